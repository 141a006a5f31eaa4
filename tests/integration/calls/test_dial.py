"""Click-to-call: event → Unitalk directCall → webhooks matched by meta → finish, or a failure
a person sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from bitrixapp.models import BitrixEvent
from integration.calls import dial, services, sync
from integration.calls.models import Call, CallSync, FailedCall
from integration.models import Job, JobAttempt, Notification
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    UNITALK,
    FakeBitrix,
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db

CALL_ID = "externalCall.89350264e026dace3f2b14d1f438257c.1773236989"


def _event(portal, *, user_id: str = "5", name: str = "ONEXTERNALCALLSTART") -> BitrixEvent:
    return BitrixEvent.objects.create(
        portal=portal,
        event=name,
        dedupe_key=f"{portal.member_id}:{name}:{CALL_ID}",
        data={
            "PHONE_NUMBER": "+380501112233",
            "USER_ID": user_id,
            "LINE_NUMBER": "unitalk",
            "CALL_ID": CALL_ID,
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": "797",
        },
        user_id=int(user_id),
    )


def _portal_registers(bitrix) -> None:
    # The portal registered the click-to-call itself before the event (docs/bitrix24.md §5.6).
    bitrix.active[CALL_ID] = {"EXTERNAL_CALL_ID": "", "PHONE_NUMBER": "380501112233", "START": ""}


def test_click_to_call_dials_the_users_line_with_the_call_id_as_meta(
    portal, connection, bitrix, rsps
):
    # given the user's click in Bitrix24
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})

    # when the event is handled and the dial job runs
    dial.dial_event_route(event=_event(portal))
    run_jobs()

    # then Unitalk rang line 101 first, then the number, echoing the Bitrix24 CALL_ID
    [dial_request] = [c for c in rsps.calls if c.request.url.endswith("/phones/directCall")]
    body = dial_request.request.body
    assert "sip=101" in body
    assert "number=380501112233" in body
    assert "meta=externalCall.89350264e026dace3f2b14d1f438257c.1773236989" in body
    row = CallSync.objects.get(bitrix_call_id=CALL_ID)
    assert row.origin == CallSync.Origin.CLICK_TO_CALL
    assert row.stage == CallSync.Stage.DIALING
    assert (row.crm_entity_type, row.crm_entity_id) == ("CONTACT", 797)


def test_webhooks_echoing_meta_finish_the_portals_call_without_registering(
    portal, connection, bitrix, rsps
):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    _portal_registers(bitrix)
    dial.dial_event_route(event=_event(portal))
    run_jobs()

    # when Unitalk reports the answered call with our meta
    call = make_call(portal, direction=Call.Direction.OUT, meta=CALL_ID, talk=30)
    services.call_changed(call=call, event="CALL_END")
    run_jobs()

    # then the portal's call is finished with 200 and never registered again
    row = CallSync.objects.get(bitrix_call_id=CALL_ID)
    assert row.call_id == call.pk
    assert row.stage == CallSync.Stage.FINISHED
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "200"
    assert bitrix.registers == 0


def test_user_without_a_line_gets_the_call_finished_as_failed_and_an_item(
    portal, connection, bitrix
):
    # given a user with no Unitalk line
    _portal_registers(bitrix)

    # when they click to call
    dial.dial_event_route(event=_event(portal, user_id="6"))
    run_jobs()

    # then the dial job is dead, the Bitrix24 call finished with 403 and a reason
    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert job.state == Job.State.DEAD
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "403"
    finish = next(p for m, p in bitrix.requests if m == "batch")["cmd"]
    assert any("FAILED_REASON=" in c for c in finish.values())
    item = FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED)
    assert item.job_id == job.pk
    assert item.owner_user_id == 6
    assert Notification.objects.filter(kind="call.dial_failed", user_id=6).exists()


def test_unitalk_refusing_for_good_finishes_with_503(portal, connection, bitrix, rsps):
    rsps.add(
        responses.POST,
        f"{UNITALK}/phones/directCall",
        json={"status": "Error", "message": "Number is not valid"},
    )
    _portal_registers(bitrix)

    dial.dial_event_route(event=_event(portal))
    run_jobs()

    assert Job.objects.get(kind=dial.KIND_DIAL).state == Job.State.DEAD
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "503"
    assert FailedCall.objects.filter(kind=FailedCall.Kind.DIAL_FAILED).count() == 1


def test_unitalk_down_retries_with_growing_delays(portal, connection, bitrix, rsps):
    # given Unitalk answering 502 three times, then taking the call
    for _ in range(3):
        rsps.add(responses.POST, f"{UNITALK}/phones/directCall", status=502, body="bad gateway")
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})

    dial.dial_event_route(event=_event(portal))
    run_jobs()

    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert job.state == Job.State.SUCCEEDED
    delays = list(
        JobAttempt.objects.filter(job=job, decision="retry")
        .order_by("number")
        .values_list("delay_s", flat=True)
    )
    assert len(delays) == 3
    assert delays[0] < delays[1] < delays[2]


def test_a_dial_without_a_click_deadline_keeps_the_dial_horizon_and_gives_up_with_480(
    portal, connection, bitrix, rsps, settings
):
    # given Unitalk down and a dial from before click deadlines (no dial_by) that started
    # longer ago than the horizon allows
    settings.CALL_DIAL_HORIZON_S = 30
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", status=502, body="bad gateway")
    _portal_registers(bitrix)
    dial.dial_event_route(event=_event(portal))
    job = Job.objects.get(kind=dial.KIND_DIAL)
    payload = {k: v for k, v in job.payload.items() if k != "dial_by"}
    Job.objects.filter(pk=job.pk).update(
        first_attempt_at=timezone.now() - timedelta(seconds=29), payload=payload
    )

    run_jobs()

    job.refresh_from_db()
    assert job.state == Job.State.DEAD
    assert job.last_error_class == "DialGaveUp"
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "480"
    assert Notification.objects.filter(kind="call.dial_failed", user_id=5).exists()


def test_same_event_twice_dials_once(portal, connection, bitrix, rsps):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    event = _event(portal)

    dial.dial_event_route(event=event)
    dial.dial_event_route(event=event)
    run_jobs()

    assert CallSync.objects.count() == 1
    assert Job.objects.filter(kind=dial.KIND_DIAL).count() == 1
    assert len([c for c in rsps.calls if c.request.url.endswith("/phones/directCall")]) == 1


def test_callback_request_registers_a_callback_then_dials(portal, connection, bitrix, rsps):
    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    event = _event(portal, name="ONEXTERNALCALLBACKSTART")
    BitrixEvent.objects.filter(pk=event.pk).update(
        data={"PHONE_NUMBER": "+380501112233", "LINE_NUMBER": "unitalk"}
    )
    event.refresh_from_db()
    # the default user (9) takes callbacks: give them a line
    from integration.unitalk.models import OperatorMapping

    OperatorMapping.objects.create(portal=portal, bitrix_user_id=9, line="109")

    dial.dial_event_route(event=event)
    run_jobs()

    [register] = [p for m, p in bitrix.requests if m == "telephony.externalcall.register"]
    assert register["TYPE"] == 4
    row = CallSync.objects.get(origin=CallSync.Origin.CALLBACK)
    assert row.bitrix_call_id
    assert f"meta={row.bitrix_call_id}" in rsps.calls[-1].request.body
    assert sync.KIND_SYNC not in Job.objects.values_list("kind", flat=True)


def test_click_to_call_from_a_call_list_keeps_its_call_list_id(portal, connection, bitrix, rsps):
    # given a click on "Call" in a Bitrix24 call list (docs/agents.md §2.1)
    event = _event(portal)
    event.data["CALL_LIST_ID"] = "12"
    event.save()

    dial.dial_event_route(event=event)

    assert CallSync.objects.get(bitrix_call_id=CALL_ID).call_list_id == 12


def test_a_click_costs_its_worker_one_job_and_ten_queries(
    portal, connection, bitrix, rsps, django_assert_max_num_queries
):
    # given: a click stored by the event door, which also started its dial job
    from bitrixapp import services as bx_services
    from integration import jobs

    rsps.add(responses.POST, f"{UNITALK}/phones/directCall", json={"status": "Success"})
    payload = {
        "event": "ONEXTERNALCALLSTART",
        "data": {"CALL_ID": CALL_ID, "USER_ID": "5", "PHONE_NUMBER": "+380501112233"},
        "auth": {"user_id": "5"},
    }
    bx_services.event_receive(portal=portal, payload=payload)
    [job] = Job.objects.all()
    assert job.kind == dial.KIND_DIAL
    # when / then: claim, attempt, the dial's reads, success and what follows a dial, no more
    # (it was two jobs and 41 queries, then 12: issue 17, docs/pipeline.md "Fewer hops")
    with django_assert_max_num_queries(10):
        assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED
    assert len([c for c in rsps.calls if c.request.url.endswith("/phones/directCall")]) == 1
