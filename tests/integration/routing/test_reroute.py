"""A failed click-to-call rerouted through the pipeline (routing/services.py over the calls
fakes): told at once, finished with the path as FAILED_REASON, the next person asked or dialled,
logged exactly once; and when routing stays out of it."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl

import pytest
import responses
from django.utils import timezone

from bitrixapp.models import BitrixEvent
from integration.agents.models import AgentState, State
from integration.calls import dial, services
from integration.calls.models import CallSync, FailedCall
from integration.models import Job, Notification
from integration.routing import services as routing
from integration.routing.models import Reroute, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    UNITALK,
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db

CALL_ID = "externalCall.reroute.1"


def agent(portal, uid: int, line: str, *, available: bool = True, dept: int = 1) -> AgentState:
    OperatorMapping.objects.update_or_create(
        portal=portal, bitrix_user_id=uid, defaults={"line": line}
    )
    return AgentState.objects.create(
        portal=portal, bitrix_user_id=uid, line=line, name=f"Agent {uid}",
        state=State.AVAILABLE if available else State.PAUSED, time_tracking=False,
        user_active=True, user_online=True, polled_at=timezone.now(), departments=[dept],
        toggle="available" if available else "break",
    )  # fmt: skip


def click(portal, bitrix, *, user_id: int) -> None:
    bitrix.active[CALL_ID] = {"EXTERNAL_CALL_ID": "", "PHONE_NUMBER": "380501112233", "START": ""}
    event = BitrixEvent.objects.create(
        portal=portal,
        event="ONEXTERNALCALLSTART",
        dedupe_key=f"{portal.member_id}:{CALL_ID}",
        data={
            "PHONE_NUMBER": "+380501112233",
            "USER_ID": str(user_id),
            "CALL_ID": CALL_ID,
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": "797",
        },
        user_id=user_id,
    )
    dial.dial_event_route(event=event)


def finish_params(bitrix) -> dict[str, str]:
    for method, params in bitrix.requests:
        if method == "batch":
            for command in params["cmd"].values():
                name, _, query = command.partition("?")
                if name == "telephony.externalCall.finish":
                    return dict(parse_qsl(query))
    raise AssertionError("no finish sent")


@pytest.fixture
def quiet_bitrix(bitrix, rsps):
    """Notices and to-dos answer too (the calls fake knows telephony only)."""
    run = bitrix.run

    def more(method, params):
        if method in ("im.notify.system.add", "crm.activity.todo.add"):
            return 1
        return run(method, params)

    bitrix.run = more
    return bitrix


def test_a_user_without_a_line_is_told_and_the_responsible_is_asked_first(
    portal, connection, quiet_bitrix, rsps
):
    # given user 8 without a line, and the record's responsible 6 available
    agent(portal, 6, "102")
    quiet_bitrix.crm_owner = 6

    # when 8 clicks a number
    click(portal, quiet_bitrix, user_id=8)
    run_jobs()

    # then the call is finished 403 with the reroute as its reason
    reroute = Reroute.objects.get()
    assert (reroute.trigger, reroute.step, reroute.to_user_id) == ("no_line", Step.RESPONSIBLE, 6)
    assert reroute.state == Reroute.State.ASKED
    finish = finish_params(quiet_bitrix)
    assert finish["STATUS_CODE"] == "403"
    assert finish["FAILED_REASON"] == "own line failed (no Unitalk line) → Agent 6"
    # and the record's call list (CRM tab, call card) shows the path
    from bitrixapp import selectors as page_selectors

    [listed] = page_selectors.crm_calls_list(portal=portal, entity_type="CONTACT", entity_id=797)
    assert listed["error"] == "own line failed (no Unitalk line) → Agent 6"
    # the caller is told who takes it, the responsible is asked, with a to-do on the record
    assert Notification.objects.filter(kind="routing.rerouted", user_id=8).count() == 1
    assert Notification.objects.filter(kind="routing.asked", user_id=6).count() == 1
    todo = [p for m, p in quiet_bitrix.requests if m == "crm.activity.todo.add"]
    assert [(t["ownerId"], t["responsibleId"]) for t in todo] == [(797, 6)]
    # nothing else: no generic failed-call item, nobody rung by surprise
    assert not FailedCall.objects.exists()
    assert CallSync.objects.count() == 1
    path = [(h["step"], h["outcome"]) for h in reroute.path]
    assert path[:3] == [(Step.OWN_LINE, "skipped"), (Step.BACKUP_LINE, "skipped"),
                        (Step.RESPONSIBLE, "chosen")]  # fmt: skip


def test_dial_mode_registers_a_new_call_for_the_colleague_and_dials_their_line(
    portal, connection, quiet_bitrix, rsps
):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    agent(portal, 6, "102")
    quiet_bitrix.crm_owner = 6
    RoutingPolicy.objects.create(portal=portal, mode=RoutingPolicy.Mode.DIAL)

    click(portal, quiet_bitrix, user_id=8)
    run_jobs()

    reroute = Reroute.objects.get()
    assert reroute.state == Reroute.State.DIALING
    new = reroute.dial_sync
    assert (new.user_id, new.origin) == (6, CallSync.Origin.CLICK_TO_CALL)
    registers = [p for m, p in quiet_bitrix.requests if m == "telephony.externalcall.register"]
    assert [(r["USER_ID"], r["EXTERNAL_CALL_ID"]) for r in registers] == [
        (6, f"reroute-{reroute.pk}")
    ]
    [dialled] = [c for c in rsps.calls if c.request.url.endswith("/phones/directCall")]
    assert "sip=102" in dialled.request.body
    assert f"meta={new.bitrix_call_id}" in dialled.request.body
    # running everything again adds nothing: logged exactly once
    Job.objects.filter(kind=routing.KIND_DIAL).update(state=Job.State.PENDING)
    run_jobs()
    assert CallSync.objects.count() == 2
    assert quiet_bitrix.registers == 1


def test_a_line_that_did_not_ring_is_rerouted_to_the_longest_idle_colleague(
    portal, connection, quiet_bitrix, rsps
):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    agent(portal, 5, "101")
    agent(portal, 6, "102")
    old = agent(portal, 7, "103")
    AgentState.objects.filter(pk=old.pk).update(since=timezone.now() - timedelta(hours=1))
    quiet_bitrix.crm_owner = 5  # the caller themself: skipped

    # when 5 clicks and Unitalk ends the call CHANUNAVAIL on the operator leg
    click(portal, quiet_bitrix, user_id=5)
    run_jobs()
    call = make_call(portal, direction="out", state="CHANUNAVAIL", line="101", meta=CALL_ID)
    call.full_seconds = 0
    call.save()
    services.call_changed(call=call, event="CALL_END")
    run_jobs()

    reroute = Reroute.objects.get()
    assert (reroute.trigger, reroute.step, reroute.to_user_id) == (
        "line_unreachable", Step.DEPARTMENT, 7,
    )  # fmt: skip
    finish = finish_params(quiet_bitrix)
    assert finish["STATUS_CODE"] == "480"
    assert finish["FAILED_REASON"] == "own line failed (the line did not ring) → Agent 7"
    # a repeated CALL_END changes nothing
    services.call_changed(call=call, event="CALL_END")
    run_jobs()
    assert Reroute.objects.count() == 1
    assert quiet_bitrix.finishes == 1


def test_nobody_available_leaves_the_pipelines_own_failed_click(
    portal, connection, quiet_bitrix, rsps
):
    agent(portal, 6, "102", available=False)
    click(portal, quiet_bitrix, user_id=8)
    run_jobs()
    assert not Reroute.objects.exists()
    assert FailedCall.objects.filter(kind=FailedCall.Kind.DIAL_FAILED).count() == 1
    assert Notification.objects.filter(kind="call.dial_failed").exists()


def test_every_step_off_ends_in_a_callback_task_and_the_caller_is_told(
    portal, connection, quiet_bitrix, rsps
):
    agent(portal, 6, "102")
    steps = [{"step": s, "on": s == Step.CALLBACK} for s in Step.values]
    RoutingPolicy.objects.create(portal=portal, steps=steps)

    click(portal, quiet_bitrix, user_id=8)
    run_jobs()

    reroute = Reroute.objects.get()
    assert reroute.state == Reroute.State.CALLBACK
    item = FailedCall.objects.get()
    assert (item.kind, item.owner_user_id, item.phone_number) == ("missed", 8, "380501112233")
    assert Notification.objects.filter(kind="routing.callback", user_id=8).exists()
    assert finish_params(quiet_bitrix)["FAILED_REASON"].endswith("→ callback task")


def test_a_reroute_job_that_dies_still_finishes_the_call_and_leaves_a_callback(
    portal, connection, quiet_bitrix, rsps, monkeypatch
):
    agent(portal, 6, "102")

    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(routing.chain, "chain_evaluate", broken)
    click(portal, quiet_bitrix, user_id=8)
    run_jobs()

    assert Job.objects.get(kind=routing.KIND_REROUTE).state == Job.State.DEAD
    assert FailedCall.objects.filter(kind=FailedCall.Kind.MISSED, owner_user_id=8).exists()
    assert Notification.objects.filter(kind="routing.callback", user_id=8).exists()
    assert finish_params(quiet_bitrix)["STATUS_CODE"] == "403"


def test_unitalk_refusing_the_key_tells_the_click_at_once_and_raises_one_banner_until_a_dial_works(
    portal, connection, quiet_bitrix, rsps
):
    # given a colleague available, and Unitalk refusing the key
    agent(portal, 6, "102")
    dial_url = f"{UNITALK}/phones/directCall"
    rsps.add(responses.POST, dial_url, json={"status": "Error", "message": "Authorization invalid"})

    # when user 5 (line 101) clicks
    click(portal, quiet_bitrix, user_id=5)
    run_jobs()

    # then: nobody else could dial either, so no reroute; the click is told at once, and the
    # admins have one banner
    assert not Reroute.objects.exists()
    assert Notification.objects.filter(kind="call.dial_failed", user_id=5).exists()
    banner = Notification.objects.get(tag=routing.TAG_UNITALK_DOWN)
    assert (banner.audience, banner.resolved_at) == (Notification.Audience.ADMINS, None)

    # when the admin saved a working key and a dial goes through again, the banner goes
    rsps.replace(responses.POST, dial_url, json={"status": "Success"})
    from integration.calls import failed
    from integration.unitalk.models import UnitalkConnection

    UnitalkConnection.objects.filter(portal=portal).update(status=UnitalkConnection.Status.OK)
    failed.failed_call_retry(item=FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED))
    run_jobs()
    banner.refresh_from_db()
    assert banner.resolved_at is not None


def test_a_line_that_did_not_ring_with_nobody_available_still_tells_and_leaves_a_callback(
    portal, connection, quiet_bitrix, rsps
):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    agent(portal, 5, "101")
    agent(portal, 6, "102", available=False)
    click(portal, quiet_bitrix, user_id=5)
    run_jobs()
    call = make_call(portal, direction="out", state="CHANUNAVAIL", line="101", meta=CALL_ID)
    call.full_seconds = 0
    call.save()
    services.call_changed(call=call, event="CALL_END")
    run_jobs()

    assert Reroute.objects.get().state == Reroute.State.CALLBACK
    assert FailedCall.objects.filter(kind=FailedCall.Kind.MISSED, owner_user_id=5).exists()
    assert Notification.objects.filter(kind="routing.callback", user_id=5).exists()
    assert finish_params(quiet_bitrix)["STATUS_CODE"] == "480"


def test_a_dial_mode_reroute_whose_colleague_lost_the_line_gives_the_caller_a_callback(
    portal, connection, quiet_bitrix, rsps
):
    agent(portal, 6, "102")
    quiet_bitrix.crm_owner = 6
    RoutingPolicy.objects.create(portal=portal, mode=RoutingPolicy.Mode.DIAL)
    # the colleague's line is unmapped between the decision and the dial
    real = routing.reroute_dial

    def unmapped_first(**kwargs):
        OperatorMapping.objects.filter(bitrix_user_id=6).delete()
        return real(**kwargs)

    routing.reroute_dial = unmapped_first
    try:
        click(portal, quiet_bitrix, user_id=8)
        run_jobs()
    finally:
        routing.reroute_dial = real

    assert Job.objects.get(kind=routing.KIND_DIAL).state == Job.State.DEAD
    reroute = Reroute.objects.get()
    assert reroute.state == Reroute.State.CALLBACK
    assert FailedCall.objects.filter(kind=FailedCall.Kind.MISSED, owner_user_id=8).exists()
    assert Notification.objects.filter(kind="routing.callback", user_id=8).exists()
