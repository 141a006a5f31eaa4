from datetime import timedelta

import pytest
from django.utils import timezone

from integration import jobs
from integration.core.errors import (
    CredentialsInvalidError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from integration.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

calls: list[int] = []
dead: list[tuple[int, str]] = []
behaviour: dict[str, BaseException | None] = {"error": None}


@jobs.register("test.flaky", on_dead=lambda job, exc: dead.append((job.pk, str(exc))))
def _flaky(job):
    calls.append(job.pk)
    if behaviour["error"] is not None:
        raise behaviour["error"]
    return {"ok": True}


@pytest.fixture(autouse=True)
def sent(settings, monkeypatch):
    calls.clear()
    dead.clear()
    behaviour["error"] = None
    sent: list[int] = []
    monkeypatch.setattr(
        jobs, "_send", lambda pairs, countdown=0: sent.extend(job_id for job_id, *_ in pairs)
    )
    return sent


def test_same_idempotency_key_gives_one_job():
    first = jobs.job_enqueue(kind="test.flaky", key="k1")
    second = jobs.job_enqueue(kind="test.flaky", key="k1")
    assert first.pk == second.pk
    assert Job.objects.count() == 1


def test_a_new_key_is_inserted_without_a_read_and_a_repeat_leaves_the_first_untouched():
    # Insert first (docs/pipeline.md "Fewer hops"): a new key is one INSERT in a savepoint.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        first = jobs.job_enqueue(kind="test.flaky", key="k2", payload={"n": 1})
    assert not [q for q in queries.captured_queries if q["sql"].lstrip().startswith("SELECT")]
    again = jobs.job_enqueue(kind="test.flaky", key="k2", payload={"n": 2}, delay_s=60)
    assert again.pk == first.pk
    stored = Job.objects.get(pk=first.pk)
    assert stored.payload["n"] == 1
    assert stored.next_attempt_at == first.next_attempt_at


def test_unknown_kind_is_refused():
    with pytest.raises(LookupError):
        jobs.job_enqueue(kind="test.nope", key="x")


def test_successful_attempt_marks_job_succeeded_with_one_attempt_row():
    job = jobs.job_enqueue(kind="test.flaky", key="ok")
    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.result == {"ok": True}
    assert [a.outcome for a in job.attempt_rows.all()] == ["succeeded"]


def test_a_job_is_claimed_once_even_if_delivered_twice():
    job = jobs.job_enqueue(kind="test.flaky", key="twice")
    jobs.job_execute(job_id=job.pk)
    assert jobs.job_execute(job_id=job.pk) is None
    assert calls == [job.pk]


def test_transient_failure_schedules_a_retry_in_the_future():
    behaviour["error"] = TransientError("boom")
    job = jobs.job_enqueue(kind="test.flaky", key="t")
    before = timezone.now()
    assert jobs.job_execute(job_id=job.pk) == Job.State.RETRYING
    job.refresh_from_db()
    assert job.next_attempt_at >= before
    assert job.last_error_class == "TransientError"
    # not due yet unless the jitter drew ~0: either way it cannot run twice at once
    attempt = job.attempt_rows.get()
    assert attempt.decision == "retry"


def test_rate_limited_waits_at_least_as_told():
    behaviour["error"] = RateLimitedError("slow down", retry_after=120)
    job = jobs.job_enqueue(kind="test.flaky", key="rl")
    jobs.job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.next_attempt_at - timezone.now() > timedelta(seconds=115)


def test_permanent_error_goes_dead_at_once_and_runs_the_dead_hook():
    behaviour["error"] = PermanentError("bad request")
    job = jobs.job_enqueue(kind="test.flaky", key="p")
    assert jobs.job_execute(job_id=job.pk) == Job.State.DEAD
    assert dead == [(job.pk, "bad request")]


def test_paused_jobs_resume_when_the_cause_is_fixed(sent):
    behaviour["error"] = CredentialsInvalidError("key invalid", pause_key="unitalk")
    job = jobs.job_enqueue(kind="test.flaky", key="pause")
    assert jobs.job_execute(job_id=job.pk) == Job.State.PAUSED
    behaviour["error"] = None
    assert jobs.jobs_resume(portal=None, pause_key="unitalk") == 1
    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED


def test_dispatcher_resends_a_job_whose_hand_off_was_lost(sent):
    job = jobs.job_enqueue(kind="test.flaky", key="lost")
    sent.clear()
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=5))
    assert jobs.jobs_dispatch() == 1
    assert sent == [job.pk]


def _stale(*jobs_):
    Job.objects.filter(pk__in=[j.pk for j in jobs_]).update(
        enqueued_at=timezone.now() - timedelta(minutes=5)
    )


def test_held_jobs_are_not_resent_while_a_sibling_of_their_kind_is_on_its_way(sent):
    # given a published job and 30 held ones of the same kind, all with stale hand-offs
    # (a drain chain longer than JOB_REDISPATCH_AFTER_S: bench/agent_status.py)
    head = jobs.job_enqueue(kind="test.flaky", key="head")
    held = [jobs.job_enqueue(kind="test.flaky", key=f"h{i}", publish=False) for i in range(30)]
    _stale(head, *held)
    sent.clear()

    # when the dispatcher runs, then only the unheld one is resent: the chain goes on from it
    assert jobs.jobs_dispatch() == 1
    assert sent == [head.pk]


def test_a_held_job_whose_chain_broke_is_published_once(sent):
    # given held jobs whose only unheld sibling is gone (its worker died after finishing)
    head = jobs.job_enqueue(kind="test.flaky", key="head")
    held = [jobs.job_enqueue(kind="test.flaky", key=f"h{i}", publish=False) for i in range(3)]
    Job.objects.filter(pk=head.pk).update(state=Job.State.SUCCEEDED)
    _stale(*held)
    sent.clear()

    # when the dispatcher runs twice
    assert jobs.jobs_dispatch() == 1
    assert jobs.jobs_dispatch() == 0  # the revived one is now the chain's unheld link

    # then the oldest was published once, unheld; the others wait for it
    assert sent == [held[0].pk]
    assert Job.objects.get(pk=held[0].pk).payload[jobs.HELD] is False
    assert all(Job.objects.get(pk=j.pk).payload[jobs.HELD] for j in held[1:])


def test_a_job_abandoned_by_a_dead_worker_is_taken_over_after_its_lease():
    job = jobs.job_enqueue(kind="test.flaky", key="crash")
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, attempts=1, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED
    assert Job.objects.get(pk=job.pk).attempts == 2


def test_unclassified_exceptions_get_a_few_tries_then_die():
    behaviour["error"] = KeyError("bug")
    job = jobs.job_enqueue(kind="test.flaky", key="bug")
    for _ in range(5):
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        state = jobs.job_execute(job_id=job.pk)
    assert state == Job.State.DEAD
    assert Job.objects.get(pk=job.pk).attempt_rows.count() == 5


def test_a_failing_inbox_is_logged_and_the_dispatcher_still_sends_due_jobs(
    sent, monkeypatch, caplog
):
    def broken_inbox() -> int:
        raise RuntimeError("inbox table locked")

    monkeypatch.setattr(jobs, "_inboxes", [broken_inbox, lambda: 0])
    job = jobs.job_enqueue(kind="test.flaky", key="inbox")
    sent.clear()
    Job.objects.filter(pk=job.pk).update(enqueued_at=None)

    assert jobs.jobs_dispatch() == 1

    assert sent == [job.pk]
    assert "inbox could not be turned into jobs" in caplog.text
