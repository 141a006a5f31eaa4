"""Install, events, refresh and uninstall over real HTTP against the sandbox portal and OAuth server.

The app runs in a threaded WSGI server on 127.0.0.1 (Bitrix24 refuses handler hosts without a
dot); the sandbox posts the install iframe, ONAPPINSTALL and events to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from django.core.wsgi import get_wsgi_application

from bitrixapp.models import BitrixEvent, Portal
from integration import jobs
from integration.bitrix import client, telephony
from integration.models import Job, Notification
from sandbox import server as sandbox_server
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def app_url() -> Iterator[str]:
    httpd = make_server(
        "127.0.0.1",
        0,
        get_wsgi_application(),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sandbox(app_url, settings):
    handle = sandbox_server.start(app_url=app_url, state_path=None)
    settings.APP_BASE_URL = app_url
    settings.BITRIX24_OAUTH_SERVER = handle.oauth_url
    settings.BITRIX24_CLIENT_ID = "local.sandbox.app"
    settings.BITRIX24_CLIENT_SECRET = "sandbox-client-secret"
    settings.BITRIX24_PORTAL_HOSTS = ["127.0.0.1"]
    settings.BITRIX24_JS_URL = f"{handle.bitrix_url}/bx24.js"
    yield handle
    handle.stop()


def control(handle, path: str, payload: dict[str, Any] | None = None) -> Any:
    response = requests.post(f"{handle.bitrix_url}/_sandbox/{path}", json=payload or {}, timeout=30)
    response.raise_for_status()
    return response.json()


def sandbox_portal(handle, member_id: str) -> dict[str, Any]:
    state = requests.get(f"{handle.bitrix_url}/_sandbox/state?log=0", timeout=10).json()
    return state["portals"][member_id]


def run_install_jobs() -> None:
    for job in Job.objects.filter(kind="portal.install", state=Job.State.PENDING):
        jobs.job_execute(job_id=job.pk)


def installed_portal(handle) -> Portal:
    creds = control(handle, "portals")
    answer = control(handle, f"portals/{creds['member_id']}/install")
    assert answer["install_page"]["status"] == 200, answer["install_page"]["body"]
    assert answer["onappinstall"]["status"] == 200, answer["onappinstall"]
    run_install_jobs()
    return Portal.objects.get(member_id=creds["member_id"])


def test_install_over_http_binds_events_placements_and_line(sandbox):
    # when
    portal = installed_portal(sandbox)
    # then
    assert portal.status == Portal.Status.ACTIVE
    remote = sandbox_portal(sandbox, portal.member_id)
    events = {h["event"].upper() for h in remote["handlers"]}
    assert {"ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL"} <= events
    placements = {p["placement"] for p in remote["placements"]}
    assert {"CALL_CARD", "CRM_LEAD_DETAIL_TAB", "CRM_DEAL_DETAIL_TAB"} <= placements
    assert [line["NUMBER"] for line in remote["lines"]] == ["unitalk"]
    assert portal.application_token == remote["application_token"]


def test_reinstall_tolerates_existing_bindings(sandbox):
    portal = installed_portal(sandbox)
    control(sandbox, f"portals/{portal.member_id}/install")
    run_install_jobs()
    assert Job.objects.filter(kind="portal.install", state=Job.State.SUCCEEDED).count() >= 2
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.ACTIVE


def test_call_event_from_the_portal_is_stored(sandbox):
    portal = installed_portal(sandbox)
    control(sandbox, f"portals/{portal.member_id}/install-finish")
    control(
        sandbox,
        f"portals/{portal.member_id}/click-to-call",
        {"phone": "+380501112233", "user_id": 1},
    )
    event = wait_until(
        lambda: BitrixEvent.objects.filter(event="ONEXTERNALCALLSTART").first(), timeout=10
    )
    assert event.portal_id == portal.pk
    assert event.data["CALL_ID"].startswith("externalCall.")


def test_expired_token_is_refreshed_against_the_sandbox_oauth_server(sandbox):
    portal = installed_portal(sandbox)
    old = portal.access_token
    control(sandbox, f"portals/{portal.member_id}/expire")
    profile = client.call(portal, "profile")
    assert profile["ID"]
    assert Portal.objects.get(pk=portal.pk).access_token != old


def test_uninstall_event_from_the_portal_wipes_tokens(sandbox):
    portal = installed_portal(sandbox)
    control(sandbox, f"portals/{portal.member_id}/install-finish")
    control(sandbox, f"portals/{portal.member_id}/uninstall", {"clean": False})
    stored = Portal.objects.get(pk=portal.pk)
    assert stored.status == Portal.Status.UNINSTALLED
    assert stored.access_token == ""


@pytest.mark.parametrize("form", ["encoded", "raw"])
def test_register_and_finish_in_one_batch_pass_call_id_in_either_form(sandbox, form, monkeypatch):
    """The app's own register+finish batch: `$result[r1][CALL_ID]` percent-encoded (what the
    app sends) or raw (what it sent before issue 19) both reach finish (reference §2.5)."""
    portal = installed_portal(sandbox)
    ref = telephony.result_ref("r1", "CALL_ID")
    if form == "raw":
        encode = telephony.command_string
        monkeypatch.setattr(
            telephony,
            "command_string",
            lambda method, params: encode(method, params).replace(quote(ref, safe=""), ref),
        )
    commands = {
        "r1": telephony.register_command(
            user_id=1, phone_number="+380501112233", call_type=2, external_call_id=f"e-{form}"
        ),
        "f1": telephony.finish_command(call_id=ref, user_id=1, duration=5, status_code="200"),
    }
    sent_as = telephony.command_string(*commands["f1"])

    result = telephony.batch_send(portal, commands)

    assert (ref in sent_as) == (form == "raw")
    assert result.errors == {}
    assert result.results["f1"]["CALL_ID"] == result.results["r1"]["CALL_ID"]
    finished = sandbox_portal(sandbox, portal.member_id)["finished"]
    assert result.results["r1"]["CALL_ID"] in finished


# --- issue 11: install only by an admin, tokens bound to their portal ---------------------------


def _user_tokens(handle, member_id: str, user_id: str) -> dict[str, Any]:
    return control(handle, f"portals/{member_id}/tokens", {"user_id": user_id})


def _stored_secrets(portal: Portal) -> tuple[str, str, str]:
    row = Portal.objects.get(pk=portal.pk)
    return row.application_token, row.access_token, row.refresh_token


def test_non_admin_token_cannot_reinstall_or_then_uninstall_the_portal(sandbox, app_url):
    # given: an installed portal and the token of Oleg, who is not an administrator
    portal = installed_portal(sandbox)
    before = _stored_secrets(portal)
    oleg = _user_tokens(sandbox, portal.member_id, "2")
    endpoint = portal.client_endpoint
    # when: ONAPPINSTALL with his token and the attacker's application_token ...
    takeover = requests.post(
        f"{app_url}/bitrix/events/",
        data={
            "event": "ONAPPINSTALL",
            "auth[member_id]": portal.member_id,
            "auth[access_token]": oleg["access_token"],
            "auth[refresh_token]": oleg["refresh_token"],
            "auth[application_token]": "attacker",
            "auth[client_endpoint]": endpoint,
            "auth[expires_in]": "3600",
        },
        timeout=30,
    )
    # ... the same through the install page ...
    page = requests.post(
        f"{app_url}/bitrix/install/?DOMAIN={portal.domain}&PROTOCOL=0",
        data={
            "member_id": portal.member_id,
            "AUTH_ID": oleg["access_token"],
            "REFRESH_ID": oleg["refresh_token"],
            "APPLICATION_TOKEN": "attacker",
        },
        timeout=30,
    )
    # ... and then the uninstall the stored "attacker" token would have allowed
    wipe = requests.post(
        f"{app_url}/bitrix/events/",
        data={
            "event": "ONAPPUNINSTALL",
            "auth[member_id]": portal.member_id,
            "auth[application_token]": "attacker",
            "data[CLEAN]": "1",
        },
        timeout=30,
    )
    # then: refused with a reason, nothing changed, the admins told once
    assert takeover.status_code == 403
    assert "administrator" in takeover.json()["error"]
    assert page.status_code == 403
    assert wipe.status_code == 401
    assert _stored_secrets(portal) == before
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.ACTIVE
    notices = Notification.objects.filter(portal=portal, tag="bitrix:install-refused")
    assert [(n.count, n.resolved_at) for n in notices] == [(2, None)]
    assert "user 2" in notices[0].message
    assert Job.objects.filter(portal=portal, kind="notification.deliver").count() == 1


def test_first_install_with_a_non_admin_token_stores_nothing(sandbox):
    creds = control(sandbox, "portals")
    answer = control(sandbox, f"portals/{creds['member_id']}/install", {"user_id": "2"})
    assert answer["install_page"]["status"] == 403
    assert answer["onappinstall"]["status"] == 403
    assert not Portal.objects.filter(member_id=creds["member_id"]).exists()


def test_genuine_onappinstall_posted_to_the_installation_url_installs(sandbox, app_url):
    # given: a portal that sends ONAPPINSTALL to the installation URL (apps that use the API)
    creds = control(sandbox, "portals")
    # when
    answer = control(
        sandbox,
        f"portals/{creds['member_id']}/install-event",
        {"event_url": f"{app_url}/bitrix/install/"},
    )
    # then
    assert answer["status"] == 200, answer
    portal = Portal.objects.get(member_id=creds["member_id"])
    assert portal.application_token == creds["application_token"]
    assert portal.installed_by_user_id == 1
    assert Job.objects.filter(portal=portal, kind="portal.install").count() == 1


def test_a_non_admins_onappinstall_at_the_installation_url_changes_nothing(sandbox, app_url):
    # given: an installed portal, which posts ONAPPINSTALL to the installation URL
    portal = installed_portal(sandbox)
    before = _stored_secrets(portal)
    # when: the event carries the token of Oleg, who is not an administrator
    answer = control(
        sandbox,
        f"portals/{portal.member_id}/install-event",
        {"event_url": f"{app_url}/bitrix/install/", "user_id": "2"},
    )
    # then
    assert answer["status"] == 403, answer
    assert _stored_secrets(portal) == before
    assert Portal.objects.get(pk=portal.pk).installed_by_user_id == 1


def test_another_portals_admin_token_does_not_open_this_portals_pages(sandbox, app_url):
    # given: portals A and B installed, and B's administrator's token
    a = installed_portal(sandbox)
    b = installed_portal(sandbox)
    b_admin = _user_tokens(sandbox, b.member_id, "1")
    own = _user_tokens(sandbox, a.member_id, "1")
    # when: B's token is posted as an entry into A's settings page
    foreign = requests.post(
        f"{app_url}/bitrix/app/settings/?DOMAIN={a.domain}&PROTOCOL=0",
        data={"member_id": a.member_id, "AUTH_ID": b_admin["access_token"]},
        timeout=30,
    )
    genuine = requests.post(
        f"{app_url}/bitrix/app/settings/?DOMAIN={a.domain}&PROTOCOL=0",
        data={"member_id": a.member_id, "AUTH_ID": own["access_token"]},
        timeout=30,
    )
    # then
    assert foreign.status_code == 401
    assert "app-token" not in foreign.text
    assert genuine.status_code == 200
    assert 'name="app-token"' in genuine.text
    assert a.client_endpoint != b.client_endpoint
