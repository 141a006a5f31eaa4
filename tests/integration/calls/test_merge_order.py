"""Webhook events merged into calls: any order gives the same final state; hook contract."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest

from integration.calls import merge
from integration.calls.models import Call
from integration.unitalk import services

# The Unitalk side's fixtures (its settings, a portal with a connection), taken by name.
from tests.integration.unitalk.conftest import (  # noqa: F401
    _unitalk_settings,
    api_key,
    connection,
    kicks,
    payload,
    portal,
    run_jobs,
)
from tests.support.factories import PortalFactory

pytestmark = pytest.mark.django_db

EVENTS = ["call_new_in", "call_answer_in", "call_end_in"]


@pytest.fixture
def hook_calls(monkeypatch):
    seen: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        merge,
        "call_changed",
        lambda *, call, event: seen.append((call.unitalk_call_id, event, call.status)),
    )
    return seen


def deliver(client, connection, name_or_body):
    body = payload(name_or_body) if isinstance(name_or_body, str) else name_or_body
    response = client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 200


def final_state(call: Call) -> dict:
    return {
        "status": call.status,
        "ended": call.ended,
        "state": call.state,
        "direction": call.direction,
        "client_number": call.client_number,
        "operator_line": call.operator_line,
        "talk_seconds": call.talk_seconds,
        "full_seconds": call.full_seconds,
        "recording_url": call.recording_url,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "dbid": call.unitalk_dbid,
        "outer": call.outer_number,
    }


@pytest.mark.parametrize("order", list(itertools.permutations(EVENTS)), ids="-".join)
def test_events_in_any_order_give_the_same_final_call(client, connection, hook_calls, order):
    for name in order:
        deliver(client, connection, name)
        run_jobs()  # each processed before the next arrives: the harshest ordering

    call = Call.objects.get()
    assert final_state(call) == {
        "status": "ended",
        "ended": True,
        "state": "ANSWER",
        "direction": "in",
        "client_number": "380505557182",
        "operator_line": "2001",
        "talk_seconds": 9,
        "full_seconds": 19,
        "recording_url": "https://api.unitalk.cloud:8443/tracking/rec/1531144732.920/2026-07-09",
        # 16:58:52 in Kyiv (EEST, UTC+3) is 13:58:52 UTC
        "started_at": datetime(2026, 7, 9, 13, 58, 52, tzinfo=UTC),
        "ended_at": datetime(2026, 7, 9, 13, 59, 11, tzinfo=UTC),
        "dbid": 275,
        "outer": "380443334455",
    }


def test_call_end_first_then_call_new_does_not_reopen_the_call(client, connection, hook_calls):
    deliver(client, connection, "call_end_in")
    deliver(client, connection, "call_new_in")
    run_jobs()

    call = Call.objects.get()
    assert (call.status, call.ended, call.last_event) == ("ended", True, "CALL_END")
    assert [e for _, e, _ in hook_calls] == ["CALL_END"]  # the late CALL_NEW changed nothing


def test_hook_is_called_once_per_changing_event_with_the_saved_call(client, connection, hook_calls):
    for name in EVENTS:
        deliver(client, connection, name)
    run_jobs()

    assert hook_calls == [
        ("1091944", "CALL_NEW", "ringing"),
        ("1091944", "CALL_ANSWER", "answered"),
        ("1091944", "CALL_END", "ended"),
    ]


def test_unanswered_inbound_call_ends_as_missed(client, connection, hook_calls):
    body = payload("call_end_in")
    body["call"].update(state="NOANSWER", secondsTalk=0, link=None)

    deliver(client, connection, body)
    run_jobs()

    call = Call.objects.get()
    assert (call.direction, call.state, call.recording_url) == ("missed", "NOANSWER", "")


def test_outbound_call_keeps_meta_and_takes_operator_from_the_caller(
    client, connection, hook_calls
):
    deliver(client, connection, "call_end_out_noanswer")
    run_jobs()

    call = Call.objects.get()
    assert call.direction == "out"
    assert (call.operator_line, call.client_number) == ("2000", "380671112233")
    assert call.meta == "externalcall.abc123"


def test_times_follow_the_connection_timezone(client, connection, hook_calls):
    connection.timezone = "Asia/Almaty"
    connection.save()

    deliver(client, connection, "call_new_in")
    run_jobs()

    # 16:58:52 in Almaty (UTC+5) is 11:58:52 UTC
    assert Call.objects.get().started_at == datetime(2026, 7, 9, 11, 58, 52, tzinfo=UTC)


def test_same_call_on_two_portals_stays_two_calls(client, connection, hook_calls, db):
    other = PortalFactory(domain="o.bitrix24.ua")
    other_connection = services.connection_create(portal=other, api_key="other-key")

    deliver(client, connection, "call_new_in")
    deliver(client, other_connection, "call_new_in")
    run_jobs()

    assert Call.objects.count() == 2


def test_the_webhook_jobs_result_names_the_calls_line_and_whether_it_ended(client, connection):
    # what follows the job (agents/flow.py, campaigns/flow.py) reads this instead of the call
    from integration.models import Job

    for name in ("call_new_in", "call_end_in"):
        deliver(client, connection, name)
        run_jobs()
    [ringing, ended] = Job.objects.filter(kind=merge.KIND_WEBHOOK).order_by("pk")
    call = Call.objects.get()
    # each payload names its line (CALL_NEW's "to" is 2000, CALL_END's 2001: tests/payloads)
    assert (ringing.result["line"], ringing.result["ended"]) == ("2000", False)
    assert (
        (ended.result["line"], ended.result["ended"])
        == (call.operator_line, True)
        == ("2001", True)
    )
