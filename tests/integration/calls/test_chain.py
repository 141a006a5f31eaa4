"""No message without work (calls/chain.py): a background backlog is drained by a short chain of
messages, one per batch, and steps with nothing to do get no message at all."""

from __future__ import annotations

import pytest

from integration import jobs
from integration.calls import services, sync
from integration.calls.models import CallSync
from integration.core import lanes
from integration.core.errors import RateLimitedError
from integration.models import Job
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    FakeBitrix,
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
)

pytestmark = pytest.mark.django_db
# Publishing happens after commit: these tests commit, as the worker does.
committing = pytest.mark.django_db(transaction=True)


def _broker(sent: list[int]) -> list[str]:
    """Run what was published, in order, as a worker would; returns the kinds it ran."""
    ran = []
    while sent:
        job_id = sent.pop(0)
        ran.append(Job.objects.get(pk=job_id).kind)
        jobs.job_execute(job_id=job_id)
    return ran


@committing
def test_a_background_backlog_is_drained_with_one_message_per_batch(
    portal, connection, bitrix, settings, sent
):
    # given 20 ended calls learned in the background lane (reconciliation, a replayed backlog)
    settings.CALL_DRAIN_BATCH = 5
    settings.CALL_DRAIN_PARALLEL = 2
    with lanes.lane_scope(lanes.BACKGROUND):
        for i in range(20):
            services.call_changed(call=make_call(portal, number=f"3805000000{i:02}"), event="X")

    # then only two drains were published at first, the rest wait as rows
    assert len(sent) == 2
    assert Job.objects.filter(kind=sync.KIND_SYNC).count() == 20

    # when the worker runs only what the broker carries (no dispatcher)
    ran = _broker(sent)

    # then the chain finished every call in 4 batches, and ran 4-6 drain messages, not 20
    assert CallSync.objects.filter(stage=CallSync.Stage.FINISHED).count() == 20
    assert bitrix.methods().count("batch") == 4
    assert 4 <= ran.count(sync.KIND_SYNC) <= 6
    assert set(Job.objects.filter(kind=sync.KIND_SYNC).values_list("state", flat=True)) == {
        Job.State.SUCCEEDED
    }


@committing
def test_a_live_calls_end_is_published_at_once_whatever_the_backlog(
    portal, connection, bitrix, settings, sent
):
    settings.CALL_DRAIN_PARALLEL = 1
    with lanes.lane_scope(lanes.BACKGROUND):
        for i in range(3):
            services.call_changed(call=make_call(portal, number=f"38050000001{i}"), event="X")
    sent.clear()

    with lanes.lane_scope(lanes.INTERACTIVE):
        live = make_call(portal, number="380501119999")
        services.call_changed(call=live, event="CALL_END")

    [job_id] = sent
    job = Job.objects.get(pk=job_id)
    assert (job.kind, job.payload["lane"]) == (sync.KIND_SYNC, lanes.INTERACTIVE)


def test_a_call_without_a_crm_entity_gets_no_details_job(portal, connection, bitrix, sent):
    # given a finished call nobody in the CRM matches (details would only set a timestamp)
    call = make_call(portal, number="380509990000")
    row = CallSync.objects.create(
        portal=portal, call=call, stage=CallSync.Stage.FINISHED, status_code="200"
    )

    # when its follow-ups are enqueued
    sync.followups_enqueue(sync=row)

    # then no message, and the step is recorded as done
    assert not Job.objects.filter(kind=sync.KIND_DETAILS).exists()
    assert CallSync.objects.get(pk=row.pk).details_stored_at is not None


def test_a_call_with_a_crm_entity_still_gets_its_timeline_comment(portal, connection, bitrix):
    call = make_call(portal, number="380509990001")
    row = CallSync.objects.create(
        portal=portal,
        call=call,
        stage=CallSync.Stage.FINISHED,
        status_code="200",
        crm_entity_type="CONTACT",
        crm_entity_id=3,
    )
    sync.followups_enqueue(sync=row)
    assert Job.objects.filter(kind=sync.KIND_DETAILS).count() == 1


@jobs.register("test.live_webhook", lane=lanes.INTERACTIVE)
def _live_webhook(job: Job) -> None:
    services.call_changed(call=job_call[0], event="CALL_NEW")


job_call: list = []


@committing
def test_a_ringing_calls_registration_runs_in_the_webhooks_worker_without_a_message(
    portal, connection, bitrix, sent
):
    # The ringing card was a message of its own, and the call's end queued behind it in the
    # interactive lane (docs/pipeline.md, "Lanes").
    job_call[:] = [make_call(portal, state="", ended=False)]
    webhook = jobs.job_enqueue(kind="test.live_webhook", key="live-new")
    sent.clear()

    jobs.job_execute(job_id=webhook.pk)

    register = Job.objects.get(kind=sync.KIND_REGISTER)
    assert register.state == Job.State.SUCCEEDED
    assert register.pk not in sent
    assert CallSync.objects.get().stage == CallSync.Stage.REGISTERED


@committing
def test_a_drain_told_to_wait_by_the_budget_stays_the_chains_only_link(
    portal, connection, bitrix, settings, sent, monkeypatch
):
    # given a backlog with one drain on its way, and the portal's budget saying "later"
    settings.CALL_DRAIN_BATCH = 5
    settings.CALL_DRAIN_PARALLEL = 1
    with lanes.lane_scope(lanes.BACKGROUND):
        for i in range(10):
            services.call_changed(call=make_call(portal, number=f"3805000002{i:02}"), event="X")
    [first] = sent
    sent.clear()
    from integration.core import ratelimit

    def later(*args, **kwargs):
        raise RateLimitedError("slot at +3s", retry_after=3, service="ratelimit")

    monkeypatch.setattr(ratelimit, "acquire", later)

    # when the drain runs into the wait
    assert jobs.job_execute(job_id=first) == Job.State.RETRYING

    # then it publishes no further drain (at most its own retry): it is still on its way itself
    assert set(sent) <= {first}
    assert Job.objects.filter(kind=sync.KIND_SYNC, payload__held=False).count() == 1
