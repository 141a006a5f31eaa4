"""Against the sandbox's Unitalk over real HTTP: webhooks into the app, CALL_END dropped,
reconciliation recovers the calls from history/get."""

from __future__ import annotations

import pytest
import requests

from integration.calls.models import Call
from integration.unitalk import client, services
from integration.unitalk.models import UnitalkEvent
from sandbox import server as sandbox_server
from tests.support.waiting import wait_until

from .conftest import run_jobs

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sandbox(live_server, settings):
    handle = sandbox_server.start(app_url=live_server.url, state_path=None)
    settings.UNITALK_API_URL = handle.unitalk_url + "/api"
    settings.APP_BASE_URL = live_server.url
    yield handle
    handle.stop()


def test_reconciliation_recovers_calls_whose_call_end_was_dropped(sandbox, portal):
    # given: the app's webhook URL registered in the sandbox, which drops every CALL_END
    connection = services.connection_create(portal=portal, api_key="SandboxKey01")
    control = sandbox.unitalk_url + "/_sandbox"
    requests.post(
        f"{control}/webhooks",
        json={
            "url": services.connection_webhook_url(connection=connection),
            "events": ["CALL_NEW", "CALL_ANSWER", "CALL_END"],
        },
        timeout=5,
    ).raise_for_status()
    requests.post(
        f"{control}/settings",
        json={"drop_call_end": True, "event_delay": 0.05, "talk_time": 7},
        timeout=5,
    ).raise_for_status()
    creds = services.connection_credentials(connection=connection)
    line = client.users_list(creds)[0]["line"]

    # when: three click-to-calls happen and their webhooks (all but CALL_END) arrive
    for number in ("380501110001", "380501110002", "380501110003"):
        client.direct_call(creds, sip=line, number=number, meta=f"bx:{number}")
    wait_until(
        lambda: UnitalkEvent.objects.filter(event="CALL_ANSWER").count() == 3,
        timeout=20,
        message="three CALL_ANSWER webhooks",
    )
    wait_until(
        lambda: len(requests.get(f"{control}/state", timeout=5).json()["unitalk"]["calls"]) >= 3,
        timeout=20,
        message="sandbox history to hold the three calls",
    )
    run_jobs()
    assert Call.objects.filter(ended=False).count() == 3
    assert not UnitalkEvent.objects.filter(event="CALL_END").exists()

    # then: reconciliation finishes them from history/get
    result = services.reconcile_portal(portal=portal)

    assert result["recovered"] == 3
    calls = Call.objects.order_by("client_number")
    assert [c.client_number for c in calls] == ["380501110001", "380501110002", "380501110003"]
    assert all(c.ended and c.reconciled and c.state == "ANSWER" for c in calls)
    assert all(c.talk_seconds == 7 and c.recording_url for c in calls)
    assert [c.meta for c in calls] == [f"bx:{c.client_number}" for c in calls]
