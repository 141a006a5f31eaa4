"""Regressions of issue 11 on the Bitrix24 side: who may install, whose token opens a page,
integers and JSON from outside, bulk retry ids, the event dedupe key, healthz, headers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.cache import cache

from bitrixapp import services
from bitrixapp.models import BitrixEvent, Portal
from integration import jobs
from integration.models import Job, Notification

# Fixtures of the Bitrix24-side tests, scoped to this module.
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    APP_INFO,
    CLIENT_ID,
    PORTAL_HOST,
    REST,
    _bitrix_settings,
    fake_user,
    new_member_id,
    ok,
    payload_body,
    portal,
    rsps,
    sent,
    user_token,
)
from tests.pages.conftest import token

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def _no_cached_checks():
    yield
    cache.clear()


def oauth_says(rsps, member_id: str) -> None:
    rsps.get(
        APP_INFO,
        json={
            "result": {
                "client_id": CLIENT_ID,
                "install": {"member_id": member_id, "client_endpoint": REST},
            }
        },
    )


def portal_says(rsps, *, user_id: str, admin: bool) -> None:
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


def onappinstall(member_id: str, *, expires_in: str = "3600") -> str:
    body = payload_body(
        "onappinstall", member_id=member_id, access_token="user-access", domain=PORTAL_HOST
    )
    return body.replace("auth%5Bexpires_in%5D=3600", f"auth%5Bexpires_in%5D={expires_in}")


def install_page(client, member_id: str, **form: str):
    return client.post(
        f"/bitrix/install/?DOMAIN={PORTAL_HOST}&PROTOCOL=1&LANG=en",
        {
            "AUTH_ID": "user-access",
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "user-refresh",
            "APPLICATION_TOKEN": "attacker",
            "member_id": member_id,
            **form,
        },
    )


def refusal_warnings(caplog) -> list[tuple[str, int]]:
    """(portal, user) of each "not an administrator" warning the install service logged."""
    return [
        (r.portal, r.user)
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.getMessage() == "install refused: not an administrator"
    ]


def secrets_of(portal: Portal) -> tuple[str, str, str]:
    row = Portal.objects.get(pk=portal.pk)
    return row.application_token, row.access_token, row.refresh_token


# --- 1. install only by an administrator ---------------------------------------------------------


def test_onappinstall_with_a_non_admins_token_is_403_and_changes_nothing(
    client, rsps, portal, caplog
):
    # given: a valid token of the portal, but of a user who is not an administrator
    before = secrets_of(portal)
    oauth_says(rsps, portal.member_id)
    portal_says(rsps, user_id="7", admin=False)
    # when
    with caplog.at_level(logging.WARNING, logger="bitrixapp"):
        response = client.post("/bitrix/events/", onappinstall(portal.member_id), content_type=FORM)
    # then
    assert response.status_code == 403
    assert refusal_warnings(caplog) == [(portal.member_id, 7)]
    assert "administrator" in response.json()["error"]
    assert secrets_of(portal) == before
    assert not Job.objects.filter(kind="portal.install").exists()
    notice = Notification.objects.get(portal=portal, tag=services.INSTALL_REFUSED_TAG)
    assert "user 7" in notice.message


def test_install_page_with_a_non_admins_token_is_403_and_the_admins_are_told_once(
    client, rsps, portal, caplog
):
    before = secrets_of(portal)
    oauth_says(rsps, portal.member_id)
    portal_says(rsps, user_id="7", admin=False)

    with caplog.at_level(logging.WARNING, logger="bitrixapp"):
        first = install_page(client, portal.member_id)
        second = install_page(client, portal.member_id)

    assert (first.status_code, second.status_code) == (403, 403)
    # a warning for each attempt, but one notice (counted) for the admins
    assert refusal_warnings(caplog) == [(portal.member_id, 7)] * 2
    assert b"administrator" in first.content
    assert secrets_of(portal) == before
    notices = Notification.objects.filter(portal=portal, tag=services.INSTALL_REFUSED_TAG)
    assert [n.count for n in notices] == [2]
    assert Job.objects.filter(kind="notification.deliver").count() == 1


def test_an_administrators_reinstall_replaces_the_tokens(client, rsps, portal):
    oauth_says(rsps, portal.member_id)
    portal_says(rsps, user_id="1", admin=True)

    response = client.post("/bitrix/events/", onappinstall(portal.member_id), content_type=FORM)

    assert response.status_code == 200
    assert secrets_of(portal)[0] == "51856fefc120afa4b628cc82d3935cce"
    # the admin check went to the portal's verified endpoint, with that user's token
    batch = json.loads(rsps.calls[1].request.body)
    assert batch["cmd"]["admin"] == "user.admin"
    assert batch["auth"] == "user-access"


def test_admin_flag_in_the_request_is_not_trusted(client, rsps):
    # the portal says "not an admin" although profile.ADMIN-like flags say yes everywhere else
    member_id = new_member_id()
    oauth_says(rsps, member_id)
    rsps.post(
        REST + "batch",
        json=ok({"result": {"app": {"CODE": CLIENT_ID}, "me": {"ID": "3", "ADMIN": True}}}),
    )
    response = install_page(client, member_id, ADMIN="Y", IS_ADMIN="1")
    assert response.status_code == 403
    assert not Portal.objects.filter(member_id=member_id).exists()


def test_onappinstall_posted_to_the_installation_url_is_accepted(client, rsps):
    member_id = new_member_id()
    oauth_says(rsps, member_id)
    portal_says(rsps, user_id="1", admin=True)

    response = client.post("/bitrix/install/", onappinstall(member_id), content_type=FORM)

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert Portal.objects.get(member_id=member_id).installed_by_user_id == 1


def test_a_non_admins_onappinstall_posted_to_the_installation_url_is_403(client, rsps, portal):
    # the installation URL takes ONAPPINSTALL under the same rule as the event door
    before = secrets_of(portal)
    oauth_says(rsps, portal.member_id)
    portal_says(rsps, user_id="7", admin=False)

    response = client.post("/bitrix/install/", onappinstall(portal.member_id), content_type=FORM)

    assert response.status_code == 403
    assert "administrator" in response.json()["error"]
    assert secrets_of(portal) == before
    assert not Job.objects.filter(kind="portal.install").exists()
    assert Notification.objects.filter(portal=portal, tag=services.INSTALL_REFUSED_TAG).exists()


def test_other_events_posted_to_the_installation_url_are_400(client, portal):
    body = payload_body(
        "onexternalcallstart",
        member_id=portal.member_id,
        application_token=portal.application_token,
    )
    response = client.post("/bitrix/install/", body, content_type=FORM)
    assert response.status_code == 400
    assert response.json()["field"] == "event"


# --- 2. a token opens only its own portal's pages ------------------------------------------------


def test_entry_with_another_portals_token_is_401_even_if_the_endpoint_answered(
    client, rsps, portal
):
    # given: the portal's REST answered (say a proxy or a bug let it), but the OAuth server
    # says the token belongs to portal B
    fake_user(rsps, user_id="1", admin=True)
    foreign = user_token(new_member_id())
    # when
    response = client.post(
        f"/bitrix/app/settings/?DOMAIN={PORTAL_HOST}&PROTOCOL=1&LANG=en",
        {"member_id": portal.member_id, "AUTH_ID": foreign},
    )
    # then
    assert response.status_code == 401
    assert response.json()["error"] == "AUTH_ID belongs to another portal"
    assert b"app-token" not in response.content


def test_entry_asks_the_stored_endpoint_never_the_domain_in_the_request(client, rsps, portal):
    fake_user(rsps, user_id="1", admin=True)
    response = client.post(
        "/bitrix/app/?DOMAIN=evil.bitrix24.com&PROTOCOL=1",
        {"member_id": portal.member_id, "AUTH_ID": user_token(portal)},
    )
    assert response.status_code == 200
    assert rsps.calls[0].request.url == REST + "batch"


# --- 4. one integer parser -------------------------------------------------------------------------


def test_unicode_digit_expires_in_on_onappinstall_is_400_naming_the_field(client, rsps):
    response = client.post(
        "/bitrix/events/", onappinstall(new_member_id(), expires_in="%C2%B2"), content_type=FORM
    )
    assert response.status_code == 400
    assert response.json()["field"] == "auth[expires_in]"
    assert len(rsps.calls) == 0
    assert not Portal.objects.exists()


def test_unicode_digit_auth_expires_on_install_is_400(client, rsps):
    response = install_page(client, new_member_id(), AUTH_EXPIRES="²")
    assert response.status_code == 400
    assert b"AUTH_EXPIRES" in response.content
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("user_id", ["9" * 20, "²", "1" * 5000])
def test_odd_user_id_in_an_event_is_400_naming_the_field(client, portal, user_id):
    body = payload_body(
        "onexternalcallstart",
        member_id=portal.member_id,
        application_token=portal.application_token,
    ).replace("auth%5Buser_id%5D=1269", f"auth%5Buser_id%5D={user_id}")
    response = client.post("/bitrix/events/", body, content_type=FORM)
    assert response.status_code == 400
    assert response.json()["field"] == "auth[user_id]"
    assert not BitrixEvent.objects.exists()


@pytest.mark.parametrize("declared", ["²", "1" * 5000, "-5"])
@pytest.mark.parametrize("path", ["/bitrix/events/", "/bitrix/install/", "/healthz"])
def test_a_content_length_that_is_no_number_is_400_at_every_door(client, path, declared):
    # Django's request.body ran int() on it: "²" and 5,000 digits were a 500 at every door.
    response = client.post(path, "event=X", content_type=FORM, CONTENT_LENGTH=declared)
    assert response.status_code == 400
    assert response.json()["field"] == "Content-Length"
    assert not BitrixEvent.objects.exists()


def test_odd_numbers_in_a_stored_event_fail_the_job_as_a_validation_error(portal):
    # given: an event row whose data no door would let in now (stored before the fix)
    row = BitrixEvent.objects.create(
        portal=portal,
        event="ONEXTERNALCALLSTART",
        dedupe_key=f"test:{uuid.uuid4().hex}",
        data={"CALL_ID": "externalCall.x.1", "USER_ID": "²", "PHONE_NUMBER": "+380501112233"},
    )
    job = jobs.job_enqueue(kind=services.KIND_EVENT, portal=portal, payload={"event_id": row.pk})
    # when
    state = jobs.job_execute(job_id=job.pk)
    # then: dead at once, a readable reason, no traceback-worthy crash
    job.refresh_from_db()
    assert state == Job.State.DEAD
    assert job.last_error_class == "InputError"
    assert "data[USER_ID] must be a whole number" in job.last_error


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/bitrix/actions/failed/?page=%C2%B2", "page"),
        ("/bitrix/actions/failed/?page=" + "9" * 5000, "page"),
        ("/bitrix/actions/failed/?user=" + "9" * 20, "user"),
        ("/bitrix/actions/crm-calls/?type=LEAD&id=%D9%A3", "id"),
        ("/bitrix/actions/jobs/" + "9" * 25 + "/", "job_id"),
    ],
)
def test_odd_numbers_in_page_actions_are_400_naming_the_field(client, portal, path, field):
    response = client.get(path, **token(portal))
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_huge_item_id_in_a_retry_url_is_400(client, portal):
    response = client.post(f"/bitrix/actions/failed/{'9' * 25}/retry/", **token(portal))
    assert response.status_code == 400
    assert response.json()["field"] == "item_id"


# --- 5. bounded JSON ----------------------------------------------------------------------------


def test_deep_json_in_an_action_body_is_400(client, portal):
    response = client.post(
        "/bitrix/actions/settings/",
        "[" * 2000,
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_deep_placement_options_are_400(client, rsps, portal):
    fake_user(rsps, user_id="1", admin=True)
    response = client.post(
        f"/bitrix/placement/?DOMAIN={PORTAL_HOST}&PROTOCOL=1",
        {
            "member_id": portal.member_id,
            "AUTH_ID": user_token(portal),
            "PLACEMENT": "CRM_LEAD_DETAIL_TAB",
            "PLACEMENT_OPTIONS": "[" * 2000,
        },
    )
    assert response.status_code == 400
    assert response.json()["field"] == "PLACEMENT_OPTIONS"


# --- 6. bulk retry ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [('{"ids": 5}', "ids"), ('{"ids": [1e30]}', "ids[0]"), ('{"ids": [1, "²"]}', "ids[1]")],
)
def test_bulk_retry_with_bad_ids_is_400(client, portal, body, field):
    response = client.post(
        "/bitrix/actions/failed/retry/", body, content_type="application/json", **token(portal)
    )
    assert response.status_code == 400
    assert response.json()["field"] == field


# --- 7. dedupe key ---------------------------------------------------------------------------------


def test_call_ids_differing_only_after_220_characters_are_two_events(client, portal):
    common = "externalCall." + "a" * 220
    answers = []
    for tail in ("1", "2"):
        body = payload_body(
            "onexternalcallstart",
            member_id=portal.member_id,
            application_token=portal.application_token,
        ).replace("externalCall.89350264e026dace3f2b14d1f438257c.1773236989", common + tail)
        answers.append(client.post("/bitrix/events/", body, content_type=FORM).json())
    assert [a["duplicate"] for a in answers] == [False, False]
    assert BitrixEvent.objects.count() == 2


# --- 9. healthz, HSTS, framed pages ------------------------------------------------------------------


def test_head_healthz_answers_like_get(client):
    head = client.head("/healthz")
    get = client.get("/healthz")
    assert head.status_code == get.status_code == 200


def test_framed_pages_are_not_cached_and_limit_scripts(client, rsps, portal):
    fake_user(rsps, user_id="1", admin=True)
    response = client.post(
        f"/bitrix/app/settings/?DOMAIN={PORTAL_HOST}&PROTOCOL=1",
        {"member_id": portal.member_id, "AUTH_ID": user_token(portal)},
    )
    csp = response["Content-Security-Policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert f"frame-ancestors 'self' https://{PORTAL_HOST};" in csp
    assert "script-src 'self' https://cdn.example.test https://acme.bitrix24.com 'nonce-" in csp
    assert "object-src 'none'" in csp
    assert f'<script nonce="{nonce}">AppPeople.pickers(); App.settingsPage();</script>' in (
        response.content.decode()
    )


def test_page_actions_are_not_cached(client, portal):
    assert client.get("/bitrix/actions/overview/", **token(portal))["Cache-Control"] == "no-store"


def test_production_settings_send_hsts(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_ENC"))}
    env.update(
        {
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "s" * 60 + "x!y@z#",
            "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1zZWNyZXQhISE=",
        }
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified" in result.stderr + result.stdout
    assert "security.W004" not in result.stderr + result.stdout
    assert "security.W005" not in result.stderr + result.stdout
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='bitrixapp.settings';"
            "django.setup();from django.conf import settings as s;"
            "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)",
        ],
        env={**env, "DJANGO_SECURE_HSTS_SECONDS": "600"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.stdout.splitlines()[-1].split() == ["600", "True"], shown.stderr


# --- 4. the same parser at the doors found after the fuzz (audit of issue 11) -------------------


@pytest.mark.parametrize("user_id", ["²", "¹²", "٣", "５"])  # noqa: RUF001 (look-alike digits)
def test_look_alike_digits_in_an_operator_mapping_are_400_naming_the_field(client, portal, user_id):
    response = client.post(
        "/bitrix/actions/operators/",
        json.dumps({"user_id": user_id, "line": "101"}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["user_id"]
