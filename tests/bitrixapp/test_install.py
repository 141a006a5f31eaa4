"""Install handshake and binding job against faked HTTP (responses)."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from bitrixapp.models import Portal
from integration import jobs
from integration.bitrix import binding
from integration.models import Job, Notification

# Fixtures of the Bitrix24-side tests, scoped to this module (not to tests/bitrixapp as a whole).
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    CLIENT_ID,
    OAUTH,
    PORTAL_HOST,
    REST,
    _bitrix_settings,
    new_member_id,
    ok,
    payload_body,
    portal,
    rest_body,
    rsps,
    sent,
)

pytestmark = pytest.mark.django_db(transaction=True)

APP_INFO = f"{OAUTH}/rest/app.info"


def fake_app_info(rsps, member_id: str, *, client_id: str = CLIENT_ID, endpoint: str = REST):
    rsps.get(
        APP_INFO,
        json={
            "result": {
                "client_id": client_id,
                "scope": "crm,telephony,placement,user,im",
                "install": {
                    "installed": False,
                    "member_id": member_id,
                    "domain": PORTAL_HOST,
                    "client_endpoint": endpoint,
                },
            }
        },
    )


def fake_profile(rsps, *, user_id: str = "1", admin: bool = True):
    """The portal answering who installs: app.info, profile and user.admin in one batch."""
    rsps.post(
        REST + "batch",
        json=ok(
            {
                "result": {
                    "app": {"CODE": CLIENT_ID},
                    "me": {"ID": user_id, "ADMIN": admin},
                    "admin": admin,
                },
                "result_error": [],
            }
        ),
    )


def install_post(
    client, member_id: str, *, domain: str = PORTAL_HOST, auth_id: str = "install-access"
):
    return client.post(
        f"/bitrix/install/?DOMAIN={domain}&PROTOCOL=1&LANG=en&APP_SID=abc",
        {
            "AUTH_ID": auth_id,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "install-refresh",
            "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
            "APPLICATION_TOKEN": "app-token-1",
            "APPLICATION_SCOPE": "crm,telephony,placement",
            "member_id": member_id,
            "status": "L",
            "PLACEMENT": "DEFAULT",
        },
    )


def bind_answer(errors: dict | None = None):
    keys = list(binding.install_commands())
    errors = errors or {}
    return ok(
        {
            "result": {k: True for k in keys if k not in errors},
            "result_error": errors or [],
            "result_total": [],
            "result_next": [],
        }
    )


def test_install_stores_portal_with_encrypted_tokens_and_enqueues_binding(client, rsps):
    # given
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    # when
    response = install_post(client, member_id)
    # then: the page is framable by that portal only and waits for the binding job
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert csp.startswith(f"frame-ancestors 'self' https://{PORTAL_HOST};")
    assert "X-Frame-Options" not in response
    assert b"installFinish" in response.content
    assert b"https://cdn.example.test/bx24.js" in response.content
    portal = Portal.objects.get(member_id=member_id)
    assert portal.status == Portal.Status.INSTALLING
    assert (portal.access_token, portal.refresh_token) == ("install-access", "install-refresh")
    assert portal.application_token == "app-token-1"
    assert portal.installed_by_user_id == 1
    assert Job.objects.filter(portal=portal, kind="portal.install").count() == 1
    # and the app.info check went to the OAuth server from settings with the posted token
    assert rsps.calls[0].request.url.startswith(APP_INFO + "?auth=install-access")


def test_tokens_are_not_readable_in_the_raw_database_column(client, rsps):
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    install_post(client, member_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token, application_token FROM bitrixapp_portal WHERE member_id = %s",
            [member_id],
        )
        raw = cursor.fetchone()
    assert all(value.startswith("fernet:") for value in raw)
    assert not any(
        secret in "".join(raw) for secret in ("install-access", "install-refresh", "app-token-1")
    )


def test_binding_job_binds_events_placements_and_line_then_activates(client, rsps):
    # given: an installing portal; the line already exists from a previous version
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    install_post(client, member_id)
    rsps.replace(
        "POST",
        REST + "batch",
        json=bind_answer({"line": {"error": "", "error_description": "Line already exists"}}),
    )
    job = Job.objects.get(kind="portal.install")
    # when
    state = jobs.job_execute(job_id=job.pk)
    # then
    assert state == Job.State.SUCCEEDED
    cmd = rest_body(rsps.calls[-1])["cmd"]
    assert cmd["event:ONEXTERNALCALLSTART"] == (
        "event.bind?event=ONEXTERNALCALLSTART&handler=https%3A%2F%2Fapp.example.com%2Fbitrix%2Fevents%2F"
    )
    assert {k for k in cmd if k.startswith("event:")} == {
        "event:ONEXTERNALCALLSTART",
        "event:ONEXTERNALCALLBACKSTART",
        "event:ONAPPUNINSTALL",
    }
    assert {k for k in cmd if k.startswith("placement:")} == {
        f"placement:{code}" for code in binding.PLACEMENTS
    }
    assert (
        "placement.bind?PLACEMENT=CALL_CARD&HANDLER=https%3A%2F%2Fapp.example.com%2Fbitrix%2Fplacement%2F"
        in cmd["placement:CALL_CARD"]
    )
    assert cmd["line"].startswith("telephony.externalLine.add?NUMBER=unitalk")
    portal = Portal.objects.get(member_id=member_id)
    assert portal.status == Portal.Status.ACTIVE
    assert Job.objects.get(pk=job.pk).result["existing"] == ["line"]


@pytest.mark.parametrize(
    ("error", "description"),
    [
        ("insufficient_scope", "The request requires higher privileges than provided by the token"),
        ("ACCESS_DENIED", "Access denied!"),
    ],
)
def test_a_refused_robot_leaves_the_robot_out_and_the_install_goes_on(
    client, rsps, error, description
):
    # given: the portal cannot take automation robots (no bizproc scope, or not allowed)
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    install_post(client, member_id)
    refused = {binding.ROBOT_KEY: {"error": error, "error_description": description}}
    rsps.replace("POST", REST + "batch", json=bind_answer(refused))
    job = Job.objects.get(kind="portal.install")
    # when
    state = jobs.job_execute(job_id=job.pk)
    # then: telephony is bound, the portal active, the robot named as left out
    assert state == Job.State.SUCCEEDED
    cmd = rest_body(rsps.calls[-1])["cmd"]
    assert cmd[binding.ROBOT_KEY].startswith("bizproc.robot.add?CODE=unitalk_add_to_campaign")
    assert Portal.objects.get(member_id=member_id).status == Portal.Status.ACTIVE
    result = Job.objects.get(pk=job.pk).result
    assert result["left_out"] == {binding.ROBOT_KEY: f"{error}: {description}"}
    assert binding.ROBOT_KEY not in result["bound"]


def test_a_robot_already_installed_counts_as_bound(client, rsps):
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    install_post(client, member_id)
    already = {
        binding.ROBOT_KEY: {
            "error": "ERROR_ACTIVITY_ALREADY_INSTALLED",
            "error_description": "Activity or Robot already installed!",
        }
    }
    rsps.replace("POST", REST + "batch", json=bind_answer(already))
    job = Job.objects.get(kind="portal.install")

    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED
    result = Job.objects.get(pk=job.pk).result
    assert result["existing"] == [binding.ROBOT_KEY]
    assert result["left_out"] == {}


def test_failed_binding_keeps_portal_installing_with_a_readable_reason(client, rsps):
    # given: the portal refuses our handler URL
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    install_post(client, member_id)
    rsps.replace(
        "POST",
        REST + "batch",
        json=bind_answer(
            {
                "event:ONAPPUNINSTALL": {
                    "error": "ERROR_WRONG_HANDLER_URL",
                    "error_description": "Wrong handler URL",
                }
            }
        ),
    )
    job = Job.objects.get(kind="portal.install")
    # when
    assert jobs.job_execute(job_id=job.pk) == Job.State.DEAD
    # then
    portal = Portal.objects.get(member_id=member_id)
    assert portal.status == Portal.Status.INSTALLING
    assert "install failed" in portal.status_reason
    assert "Wrong handler URL" in portal.status_reason
    assert Notification.objects.filter(portal=portal, kind="bitrix.install").exists()


def test_install_status_shows_state_to_the_page(client, rsps):
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    page = install_post(client, member_id).content.decode()
    token = json.loads('"' + page.split('var token = "', 1)[1].split('"', 1)[0] + '"')
    answer = client.get("/bitrix/install/status/", HTTP_X_APP_TOKEN=token)
    assert answer.status_code == 200
    assert answer.json()["status"] == "installing"
    assert answer.json()["job"]["state"] == "pending"


def test_forged_install_with_endpoint_on_a_foreign_host_is_refused(client, rsps):
    member_id = new_member_id()
    response = install_post(client, member_id, domain="evil.example.com")
    assert response.status_code == 403
    assert len(rsps.calls) == 0  # nothing sent anywhere, least of all our client_secret
    assert not Portal.objects.filter(member_id=member_id).exists()


def test_lookalike_host_is_not_an_allowed_portal_host(client, rsps):
    response = install_post(client, new_member_id(), domain="acme.bitrix24.com.evil.io")
    assert response.status_code == 403
    assert len(rsps.calls) == 0


def test_install_with_a_token_of_another_portal_is_refused(client, rsps):
    member_id = new_member_id()
    fake_app_info(rsps, "someone-else")
    response = install_post(client, member_id)
    assert response.status_code == 403
    assert not Portal.objects.filter(member_id=member_id).exists()


def test_install_with_a_token_of_another_app_is_refused(client, rsps):
    member_id = new_member_id()
    fake_app_info(rsps, member_id, client_id="app.other")
    assert install_post(client, member_id).status_code == 403
    assert not Portal.objects.exists()


def test_install_with_a_token_the_oauth_server_rejects_is_401(client, rsps):
    rsps.get(APP_INFO, json={"error": "invalid_token", "error_description": "x"}, status=401)
    assert install_post(client, new_member_id()).status_code == 401
    assert not Portal.objects.exists()


def test_onappinstall_event_installs_after_app_info_check(client, rsps):
    # given
    member_id = new_member_id()
    fake_app_info(rsps, member_id)
    fake_profile(rsps)
    body = payload_body(
        "onappinstall", member_id=member_id, access_token="ev-access", domain=PORTAL_HOST
    )
    # when
    response = client.post(
        "/bitrix/events/", body, content_type="application/x-www-form-urlencoded"
    )
    # then
    assert response.status_code == 200
    portal = Portal.objects.get(member_id=member_id)
    assert portal.application_token == "51856fefc120afa4b628cc82d3935cce"
    assert portal.refresh_token == "4s386p3q0tr8dy89xvmt96234v3dljg8"
    assert Job.objects.filter(portal=portal, kind="portal.install").count() == 1


def test_forged_onappinstall_is_refused_and_stores_nothing(client, rsps):
    rsps.get(APP_INFO, json={"error": "invalid_token"}, status=401)
    body = payload_body(
        "onappinstall", member_id=new_member_id(), access_token="forged", domain=PORTAL_HOST
    )
    response = client.post(
        "/bitrix/events/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 401
    assert not Portal.objects.exists()


def test_reinstall_of_a_suspended_portal_resumes_paused_work(client, rsps, portal):
    # given: a suspended portal with paused work
    Portal.objects.filter(pk=portal.pk).update(
        status=Portal.Status.SUSPENDED, status_reason="invalid_grant"
    )
    paused = Job.objects.create(
        kind="bitrix.event",
        portal=portal,
        idempotency_key="p1",
        state=Job.State.PAUSED,
        pause_key="bitrix",
        payload={"event_id": 0},
    )
    fake_app_info(rsps, portal.member_id)
    fake_profile(rsps)
    install_post(client, portal.member_id)
    rsps.replace("POST", REST + "batch", json=bind_answer())
    # when
    jobs.job_execute(job_id=Job.objects.get(kind="portal.install").pk)
    # then
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.ACTIVE
    assert Job.objects.get(pk=paused.pk).state == Job.State.PENDING


def test_install_page_refuses_get(client):
    assert client.get("/bitrix/install/").status_code == 405


def test_bind_commands_are_json_serialisable():
    assert json.dumps(binding.install_commands())
