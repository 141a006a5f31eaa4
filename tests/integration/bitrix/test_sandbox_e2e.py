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
from integration.models import Job
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
