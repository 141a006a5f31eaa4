"""Calls seen at Unitalk reach Bitrix24 exactly once: register + finish, batched, ambiguity resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from integration.calls import services, statuses, sync
from integration.calls.models import Call, CallSync
from integration.models import Job
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    FakeBitrix,
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db


def _ended(portal, **kwargs) -> CallSync:
    call = make_call(portal, **kwargs)
    services.call_changed(call=call, event="CALL_END")
    return CallSync.objects.get(call=call)


@pytest.mark.parametrize(
    ("state", "inbound", "code"),
    [
        ("ANSWER", True, "200"),
        ("ANSWER", False, "200"),
        ("NOANSWER", False, "304"),
        ("BUSY", False, "486"),
        ("BUSY", True, "304"),
        ("NOMONEY", False, "402"),
        ("SOMETHING_NEW", False, "OTHER"),
    ],
)
def test_status_code_comes_from_the_one_table(state, inbound, code):
    assert statuses.status_code_for(state=state, inbound=inbound) == code


def test_ended_call_is_registered_and_finished_in_one_batch(portal, connection, bitrix):
    # given a call that had ended when we first saw it
    row = _ended(portal)

    # when its jobs run
    run_jobs()

    # then one batch registered and finished it, and the row knows the CALL_ID and CRM entity
    row.refresh_from_db()
    assert bitrix.methods().count("batch") == 1
    assert bitrix.registers == 1
    assert bitrix.finishes == 1
    assert row.stage == CallSync.Stage.FINISHED
    assert row.bitrix_call_id in bitrix.finished
    assert (row.crm_entity_type, row.crm_entity_id) == ("CONTACT", 3)
    assert row.status_code == "200"
    assert row.user_id == 5  # the operator mapped to line 101


def test_register_carries_the_unitalk_call_id_and_type(portal, connection, bitrix):
    row = _ended(portal, direction=Call.Direction.OUT, state="BUSY")

    run_jobs()

    [(_, params)] = [r for r in bitrix.requests if r[0] == "batch"]
    register = params["cmd"][f"r{row.pk}"]
    assert f"EXTERNAL_CALL_ID={row.call.unitalk_call_id}" in register
    assert "TYPE=1" in register
    assert "SHOW=0" in register
    assert "STATUS_CODE=486" in params["cmd"][f"f{row.pk}"]


def test_a_backlog_goes_out_in_batches_of_many_calls(portal, connection, bitrix, settings):
    # given five ended calls and room for three per batch
    settings.CALL_DRAIN_BATCH = 3
    rows = [_ended(portal, number=f"38050000000{i}") for i in range(5)]

    # when the jobs run
    run_jobs()

    # then two batches carried them all, each call finished once
    assert bitrix.methods().count("batch") == 2
    assert bitrix.finishes == 5
    assert all(CallSync.objects.get(pk=r.pk).stage == CallSync.Stage.FINISHED for r in rows)
    assert Job.objects.filter(kind=sync.KIND_SYNC, state=Job.State.SUCCEEDED).count() == 5


def test_lost_batch_answer_is_resolved_by_looking_up_the_finished_call(
    portal, connection, bitrix, settings
):
    # given a register+finish batch that Bitrix24 carried out but whose answer was lost
    settings.HTTP_READ_TIMEOUT = 0.0
    settings.HTTP_CONNECT_TIMEOUT = 0.0
    bitrix.lose_answer.add("batch")
    row = _ended(portal)
    run_jobs(rounds=1)
    row.refresh_from_db()
    assert row.sent_op == sync.OP_REGISTER_FINISH
    assert row.stage == CallSync.Stage.NEW

    # when the retry runs after the lost request had time to settle
    CallSync.objects.filter(pk=row.pk).update(sent_at=timezone.now() - timedelta(seconds=5))
    run_jobs()

    # then it found the finished call instead of registering a second one
    row.refresh_from_db()
    assert row.stage == CallSync.Stage.FINISHED
    assert bitrix.registers == 1
    assert bitrix.finishes == 1
    assert row.bitrix_call_id in bitrix.finished
    assert "crm.activity.list" in bitrix.methods()
    assert row.status_code == "200"  # recording and missed-call steps key off it


def test_lost_request_that_never_arrived_is_sent_again(portal, connection, bitrix, settings):
    # given a batch that failed before reaching Bitrix24 (connection refused)
    settings.HTTP_READ_TIMEOUT = 0.0
    settings.HTTP_CONNECT_TIMEOUT = 0.0
    bitrix.fail_next["batch"] = requests.ConnectionError("refused")
    row = _ended(portal)
    run_jobs(rounds=1)

    # when the retry runs
    CallSync.objects.filter(pk=row.pk).update(sent_at=timezone.now() - timedelta(seconds=5))
    run_jobs()

    # then it looked, found nothing and registered + finished once
    row.refresh_from_db()
    assert row.stage == CallSync.Stage.FINISHED
    assert bitrix.registers == 1
    assert bitrix.finishes == 1


def test_retry_waits_while_a_lost_request_may_still_be_running(portal, connection, bitrix):
    bitrix.lose_answer.add("batch")
    row = _ended(portal)
    run_jobs(rounds=1)

    run_jobs(rounds=1)

    job = Job.objects.get(kind=sync.KIND_SYNC)
    assert job.last_error_class == "SyncBusy"
    assert "crm.activity.list" not in bitrix.methods()
    assert CallSync.objects.get(pk=row.pk).stage == CallSync.Stage.NEW


def test_finish_retry_that_finds_no_call_counts_as_finished(portal, connection, bitrix):
    # given a call registered while ringing whose finish went through but the answer was lost
    call = make_call(portal, ended=False)
    services.call_changed(call=call, event="CALL_NEW")
    run_jobs()
    row = CallSync.objects.get(call=call)
    assert row.stage == CallSync.Stage.REGISTERED
    Call.objects.filter(pk=call.pk).update(
        ended=True, status=Call.Status.ENDED, state="ANSWER", talk_seconds=10
    )
    call.refresh_from_db()
    bitrix.lose_answer.add("batch")
    services.call_changed(call=call, event="CALL_END")
    run_jobs(rounds=1)

    # when the finish is retried
    run_jobs()

    # then "Call is not found" means it was finished: once in Bitrix24, finished here
    row.refresh_from_db()
    assert row.stage == CallSync.Stage.FINISHED
    assert bitrix.registers == 1
    assert bitrix.finishes == 1


def test_ringing_call_is_registered_with_the_card_and_finished_alone(portal, connection, bitrix):
    call = make_call(portal, ended=False)
    services.call_changed(call=call, event="CALL_NEW")
    run_jobs()
    Call.objects.filter(pk=call.pk).update(
        ended=True, status=Call.Status.ENDED, state="ANSWER", talk_seconds=10
    )
    call.refresh_from_db()

    services.call_changed(call=call, event="CALL_END")
    run_jobs()

    register = [p for m, p in bitrix.requests if m == "telephony.externalcall.register"]
    assert register
    assert register[0]["SHOW"] == 1
    [(_, batch)] = [r for r in bitrix.requests if r[0] == "batch"]
    assert list(batch["cmd"]) == [f"f{CallSync.objects.get(call=call).pk}"]
    assert bitrix.finishes == 1


def test_duplicate_webhooks_make_one_job_per_step(portal, connection, bitrix):
    call = make_call(portal)

    for _ in range(3):
        services.call_changed(call=call, event="CALL_END")

    assert CallSync.objects.filter(call=call).count() == 1
    assert Job.objects.filter(kind=sync.KIND_SYNC).count() == 1


def test_calls_between_inner_lines_are_not_synced(portal, connection, bitrix):
    call = make_call(portal, direction=Call.Direction.INNER)

    services.call_changed(call=call, event="CALL_END")

    assert not CallSync.objects.exists()


def test_two_drains_never_send_the_same_call(portal, connection, bitrix):
    # given a call claimed by another job
    row = _ended(portal)
    assert sync.claim(row.pk, "someone-else")

    # when its own job runs
    run_jobs(rounds=1, force=False)

    # then it does not send it and waits for the other
    assert "batch" not in bitrix.methods()
    assert Job.objects.get(kind=sync.KIND_SYNC).last_error_class == "SyncBusy"


def test_details_add_a_timeline_comment_on_the_crm_entity(portal, connection, bitrix):
    row = _ended(portal)

    run_jobs()

    comments = [p for m, p in bitrix.requests if m == "crm.timeline.comment.add"]
    assert len(comments) == 1
    assert comments[0]["fields"]["ENTITY_TYPE"] == "contact"
    assert comments[0]["fields"]["ENTITY_ID"] == 3
    assert CallSync.objects.get(pk=row.pk).details_stored_at is not None


def test_refused_register_dies_as_a_crm_sync_failed_item(portal, connection, bitrix):
    from integration.calls.models import FailedCall
    from integration.models import Notification

    # given Bitrix24 refusing the register for good (unknown user)
    def refuse(params):
        raise LookupError("User is not found or is not active")

    bitrix.register = refuse  # type: ignore[method-assign]
    row = _ended(portal)

    run_jobs()

    job = Job.objects.get(kind=sync.KIND_SYNC)
    assert job.state == Job.State.DEAD
    item = FailedCall.objects.get(kind=FailedCall.Kind.CRM_SYNC_FAILED)
    assert item.job_id == job.pk
    assert item.sync_id == row.pk
    assert "User is not found" in item.reason
    assert Notification.objects.filter(kind="call.crm_sync_failed", user_id=5).exists()


def test_card_mode_answer_shows_the_card_only_when_answered(portal, connection, bitrix):
    from bitrixapp.models import PortalOptions, portal_options

    # given a portal that wants the call card on answer
    options = portal_options(portal)
    options.card_mode = PortalOptions.CardMode.ON_ANSWER
    options.save()
    call = make_call(portal, ended=False)
    services.call_changed(call=call, event="CALL_NEW")
    run_jobs()
    [register] = [p for m, p in bitrix.requests if m == "telephony.externalcall.register"]
    assert register["SHOW"] == 0

    # when the operator answers
    Call.objects.filter(pk=call.pk).update(status=Call.Status.ANSWERED)
    call.refresh_from_db()
    services.call_changed(call=call, event="CALL_ANSWER")
    run_jobs()

    # then the card is shown to the operator of the line
    [show] = [p for m, p in bitrix.requests if m == "telephony.externalcall.show"]
    assert show["USER_ID"] == [5]
    assert show["CALL_ID"] == CallSync.objects.get(call=call).bitrix_call_id
