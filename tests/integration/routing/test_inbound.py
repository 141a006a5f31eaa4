"""Inbound (docs/routing.md "Inbound"): Unitalk routes live calls itself, so the app routes the
card and the callback: a ringing call whose line's user is away is registered for the first
available person; a missed call's callback goes to the first available person and escalates
to the manager when left open."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integration.agents.models import AgentState, State
from integration.calls import services
from integration.calls.models import CallSync, FailedCall
from integration.models import Job, Notification
from integration.routing import inbound as routing
from integration.routing.models import Reroute, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db


def agent(portal, uid: int, line: str, *, available: bool = True, manager: int | None = None):
    OperatorMapping.objects.update_or_create(
        portal=portal, bitrix_user_id=uid, defaults={"line": line}
    )
    return AgentState.objects.create(
        portal=portal,
        bitrix_user_id=uid,
        line=line,
        name=f"Agent {uid}",
        state=State.AVAILABLE if available else State.PAUSED,
        time_tracking=False,
        user_active=True,
        user_online=True,
        polled_at=timezone.now(),
        departments=[1],
        toggle="available" if available else "break",
        manager_user_id=manager,
    )


def registered_users(bitrix) -> list[int]:
    return [p["USER_ID"] for m, p in bitrix.requests if m == "telephony.externalcall.register"]


def test_a_ringing_call_for_an_away_user_is_registered_for_the_available_colleague(
    portal, connection, bitrix
):
    agent(portal, 5, "101", available=False)
    agent(portal, 6, "102")

    call = make_call(portal, ended=False, line="101")
    services.call_changed(call=call, event="CALL_NEW")
    run_jobs()

    assert registered_users(bitrix) == [6]
    reroute = Reroute.objects.get()
    assert (reroute.trigger, reroute.state, reroute.step, reroute.to_user_id) == (
        "inbound",
        Reroute.State.CARD,
        Step.DEPARTMENT,
        6,
    )
    assert reroute.path[0]["why"] == "unavailable"


def test_a_handed_on_card_is_shown_to_the_colleagues_present_too(portal, connection, bitrix):
    # given the line's user away, three colleagues of the department present, one of them on a
    # break, and an available agent of another department
    agent(portal, 5, "101", available=False)
    for uid, line in ((6, "102"), (7, "103"), (8, "104")):
        agent(portal, uid, line)
    agent(portal, 9, "105", available=False)
    AgentState.objects.create(
        portal=portal, bitrix_user_id=10, line="106", name="Agent 10", state=State.AVAILABLE,
        time_tracking=False, user_active=True, user_online=True, polled_at=timezone.now(),
        departments=[2], toggle="available",
    )  # fmt: skip
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=10, line="106")

    # when a call rings on the away user's line
    services.call_changed(call=make_call(portal, ended=False, line="101"), event="CALL_NEW")
    run_jobs()

    # then it is registered for one colleague, and its card is shown to every colleague present
    [picked] = registered_users(bitrix)
    [shown] = [p["USER_ID"] for m, p in bitrix.requests if m == "telephony.externalcall.show"]
    assert shown[0] == picked
    assert sorted(shown) == [6, 7, 8]
    assert sorted([*Reroute.objects.get().viewers, picked]) == [6, 7, 8]


def test_a_ringing_call_for_an_available_user_stays_theirs(portal, connection, bitrix):
    agent(portal, 5, "101")
    agent(portal, 6, "102")
    services.call_changed(call=make_call(portal, ended=False, line="101"), event="CALL_NEW")
    run_jobs()
    assert registered_users(bitrix) == [5]
    assert not Reroute.objects.exists()


def test_presence_never_read_keeps_the_line_user(portal, connection, bitrix):
    AgentState.objects.create(portal=portal, bitrix_user_id=5, line="101", state=State.PAUSED)
    agent(portal, 6, "102")
    services.call_changed(call=make_call(portal, ended=False, line="101"), event="CALL_NEW")
    run_jobs()
    assert registered_users(bitrix) == [5]


def test_a_missed_call_goes_to_the_first_available_person_and_escalates_when_left_open(
    portal, connection, bitrix
):
    # given the CRM owner 7 on a break, 6 available, their manager is 9
    agent(portal, 7, "103", available=False, manager=9)
    agent(portal, 6, "102", manager=9)
    RoutingPolicy.objects.create(portal=portal, escalate_after_min=20)

    services.call_changed(call=make_call(portal, state="NOANSWER"), event="CALL_END")
    run_jobs()

    item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
    assert item.owner_user_id == 6
    # nothing waits in the queue meanwhile, and nothing is due before the minutes pass
    assert not Job.objects.filter(kind=routing.KIND_ESCALATE).exists()
    assert routing.escalations_enqueue(now=timezone.now() + timedelta(minutes=19)) == 0
    # when the minutes pass with the item still open
    assert routing.escalations_enqueue(now=timezone.now() + timedelta(minutes=21)) == 1
    run_jobs()
    note = Notification.objects.get(kind="routing.escalated")
    assert (note.user_id, note.params["n"], note.params["phone"]) == (9, 20, "380501112233")
    # and only once
    assert routing.escalations_enqueue(now=timezone.now() + timedelta(minutes=40)) == 0


def test_a_resolved_callback_does_not_escalate(portal, connection, bitrix):
    agent(portal, 7, "103", manager=9)
    services.call_changed(call=make_call(portal, state="NOANSWER"), event="CALL_END")
    run_jobs()
    item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
    assert item.owner_user_id == 7  # available: the owner keeps it
    FailedCall.objects.filter(pk=item.pk).update(state=FailedCall.State.RESOLVED)
    assert routing.escalations_enqueue(now=timezone.now() + timedelta(hours=2)) == 0
    run_jobs()
    assert not Notification.objects.filter(kind="routing.escalated").exists()
    assert CallSync.objects.count() == 1
