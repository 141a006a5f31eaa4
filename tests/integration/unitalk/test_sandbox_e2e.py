"""Against the sandbox's Unitalk over real HTTP: webhooks into the app, CALL_END dropped,
reconciliation recovers the calls from history/get."""

from __future__ import annotations

import pytest
import requests

from integration.calls import reconcile
from integration.calls.models import Call
from integration.unitalk import client, services
from integration.unitalk.models import UnitalkEvent
from sandbox import server as sandbox_server
from tests.support.factories import PortalFactory
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
    result = reconcile.reconcile_portal(portal=portal)

    assert result["recovered"] == 3
    calls = Call.objects.order_by("client_number")
    assert [c.client_number for c in calls] == ["380501110001", "380501110002", "380501110003"]
    assert all(c.ended and c.reconciled and c.state == "ANSWER" for c in calls)
    assert all(c.talk_seconds == 7 and c.recording_url for c in calls)
    assert [c.meta for c in calls] == [f"bx:{c.client_number}" for c in calls]


def test_operators_are_mapped_from_the_sandbox_portal_users_and_unitalk_lines(sandbox):
    # given: a sandbox portal (users 1 and 2 with inner phones 101 and 102) and its Unitalk
    # project (lines 101, 102), plus a third Unitalk line nobody in Bitrix24 has
    from datetime import timedelta

    from django.utils import timezone

    from bitrixapp.models import Portal
    from integration.models import Notification
    from integration.unitalk import selectors

    created = requests.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={}, timeout=5).json()
    portal = PortalFactory(
        member_id=created["member_id"],
        domain=created["domain"],
        client_endpoint=created["client_endpoint"],
        server_endpoint=created["server_endpoint"],
        access_token=created["access_token"],
        refresh_token=created["refresh_token"],
        access_expires_at=timezone.now() + timedelta(hours=1),
        status=Portal.Status.ACTIVE,
    )
    key = requests.post(
        f"{sandbox.unitalk_url}/_sandbox/keys",
        json={
            "users": [
                {"id": 1, "firstName": "Anna", "lastName": "A", "line": "101"},
                {"id": 2, "firstName": "Oleg", "lastName": "O", "line": "102"},
                {"id": 3, "firstName": "Desk", "lastName": "", "line": "109"},
            ]
        },
        timeout=5,
    ).json()["api_key"]
    services.connection_create(portal=portal, api_key=key)

    # when
    result = services.operators_sync(portal=portal)

    # then
    assert selectors.operator_line_for_user(portal, 1) == "101"
    assert selectors.operator_user_for_line(portal, "102") == 2
    assert result["unmapped"] == ["109"]
    assert Notification.objects.get(portal=portal).context == {"lines": ["109"]}
