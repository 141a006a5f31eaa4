"""A person's click is now or never (issue 21 item 1): quick retries within CALL_CLICK_DEADLINE_S,
then a visible failure with the reason, in the user's language, and never a late dial."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from bitrixapp import selectors
from bitrixapp.models import BitrixEvent
from integration.calls import dial, failed
from integration.calls.models import CallSync, FailedCall
from integration.models import Job, JobAttempt, Notification
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    UNITALK,
    FakeBitrix,
    bitrix,
    call_settings,
    connection,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db

CALL_ID = "externalCall.5d1c0ffee0000000000000000000000a.1773236989"
DIAL = f"{UNITALK}/phones/directCall"


def _click(portal, *, seconds_ago: float = 0) -> BitrixEvent:
    event = BitrixEvent.objects.create(
        portal=portal,
        event="ONEXTERNALCALLSTART",
        dedupe_key=f"{portal.member_id}:click:{CALL_ID}",
        data={
            "PHONE_NUMBER": "+380501112233",
            "USER_ID": "5",
            "LINE_NUMBER": "unitalk",
            "CALL_ID": CALL_ID,
        },
        user_id=5,
    )
    if seconds_ago:
        BitrixEvent.objects.filter(pk=event.pk).update(
            received_at=timezone.now() - timedelta(seconds=seconds_ago)
        )
        event.refresh_from_db()
    return event


def _portal_registers(bitrix) -> None:
    bitrix.active[CALL_ID] = {"EXTERNAL_CALL_ID": "", "PHONE_NUMBER": "380501112233", "START": ""}


def _dials(rsps) -> int:
    return len([c for c in rsps.calls if c.request.url == DIAL])


def test_a_click_past_its_deadline_is_never_dialled_and_fails_visibly(
    portal, connection, bitrix, rsps, settings
):
    # given a click whose job only gets to run after the deadline (e.g. a resumed pause)
    settings.CALL_CLICK_DEADLINE_S = 15
    rsps.add(responses.POST, DIAL, json={"status": "Success"})
    _portal_registers(bitrix)
    dial.dial_event_route(event=_click(portal, seconds_ago=16))

    # when it runs
    run_jobs()

    # then nothing is dialled; the Bitrix24 call is finished 480 with the reason; item + notice
    assert _dials(rsps) == 0
    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert (job.state, job.last_error_class) == (Job.State.DEAD, "DialExpired")
    assert job.last_error.startswith("click expired")
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "480"
    finish = [p["cmd"] for m, p in bitrix.requests if m == "batch"][-1]
    assert any("FAILED_REASON=Unitalk%20did%20not%20accept" in c for c in finish.values()), finish
    assert FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED).job_id == job.pk
    notice = Notification.objects.get(kind="call.dial_failed", user_id=5)
    assert "Try again" in notice.message


def test_transient_failures_retry_quickly_until_the_deadline_then_expire(
    portal, connection, bitrix, rsps, settings
):
    # given Unitalk answering 500 and a click with 1 s of its deadline left
    settings.CALL_CLICK_DEADLINE_S = 30
    settings.CALL_CLICK_RETRY_BASE_S = 0.5
    rsps.add(responses.POST, DIAL, status=500, json={"status": "Error"})
    _portal_registers(bitrix)
    dial.dial_event_route(event=_click(portal, seconds_ago=29))

    run_jobs()

    # then it retried after 0.5 s, and gave up when the next delay would pass the deadline
    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert job.state == Job.State.DEAD
    assert job.last_error_class == "DialExpired"
    delays = list(
        JobAttempt.objects.filter(job=job, decision="retry").values_list("delay_s", flat=True)
    )
    assert len(delays) == 1
    assert 0.5 <= delays[0] < 0.6
    assert _dials(rsps) == 2


def test_a_refused_key_fails_the_click_at_once_instead_of_pausing_it(
    portal, connection, bitrix, rsps
):
    # given Unitalk refusing the key; the portal reads Ukrainian
    portal.lang = "uk"
    portal.save(update_fields=["lang"])
    rsps.add(responses.POST, DIAL, json={"status": "Error", "message": "Authorization invalid"})
    _portal_registers(bitrix)

    dial.dial_event_route(event=_click(portal))
    run_jobs()

    # then the click is dead (never resumed and dialled when the key is fixed), told in Ukrainian
    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert (job.state, job.last_error_class) == (Job.State.DEAD, "DialKeyRefused")
    assert bitrix.finished[CALL_ID]["STATUS_CODE"] == "503"
    notice = Notification.objects.get(kind="call.dial_failed", user_id=5)
    assert "Спробувати ще раз" in notice.message


def test_try_again_dials_a_fresh_call_now_with_a_new_deadline(
    portal, connection, bitrix, rsps, settings
):
    # given an expired click, finished in Bitrix24 as failed
    settings.CALL_CLICK_DEADLINE_S = 15
    _portal_registers(bitrix)
    dial.dial_event_route(event=_click(portal, seconds_ago=20))
    run_jobs()
    item = FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED)
    rsps.add(responses.POST, DIAL, json={"status": "Success"})

    # when the person presses "Try again"
    failed.failed_call_retry(item=item)
    run_jobs()

    # then Unitalk dials once, as a fresh call (no meta: the failed one is finished)
    [request] = [c.request for c in rsps.calls if c.request.url == DIAL]
    assert "meta=externalCall" not in request.body
    job = Job.objects.get(kind=dial.KIND_DIAL)
    assert job.state == Job.State.SUCCEEDED
    assert job.payload["dial_by"] > timezone.now().timestamp()


def test_the_call_card_shows_the_dial_progress_and_what_to_do_on_failure(
    portal, connection, bitrix, rsps, settings
):
    # given a click retrying while Unitalk answers 500
    settings.CALL_CLICK_DEADLINE_S = 15
    rsps.add(responses.POST, DIAL, status=500, json={"status": "Error"})
    _portal_registers(bitrix)
    dial.dial_event_route(event=_click(portal))
    run_jobs(rounds=1, force=False)

    # then the card's tab sees a retrying dial with attempts and time left
    card = selectors.call_card_get(portal=portal, bitrix_call_id=CALL_ID)
    assert card["dial"]["state"] == "retrying"
    assert card["dial"]["attempts"] == 1
    assert 0 < card["dial"]["seconds_left"] <= 15

    # and once it expired, a failure with a retry target
    Job.objects.filter(kind=dial.KIND_DIAL).update(
        payload={"sync_id": CallSync.objects.get().pk, "dial_by": 1.0, "lane": "interactive"}
    )
    run_jobs()
    card = selectors.call_card_get(portal=portal, bitrix_call_id=CALL_ID)
    assert card["dial"]["state"] == "failed"
    assert card["dial"]["retry_item"] == FailedCall.objects.get().pk
    assert "15 seconds" in card["dial"]["reason"]
