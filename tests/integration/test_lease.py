"""Leases: renewed while an attempt runs, taken over with the lost attempt closed as abandoned,
and a job that keeps losing its worker is given up (integration/lease.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integration import jobs, lease
from integration.models import Job, JobAttempt
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

seen: dict[str, object] = {}


@jobs.register("test.lease_watch")
def _lease_watch(job):
    """Runs until its lease has been renewed past the one the claim gave it."""
    claimed = Job.objects.get(pk=job.pk).lease_expires_at
    seen["renewed"] = wait_until(
        lambda: Job.objects.get(pk=job.pk).lease_expires_at > claimed + timedelta(seconds=0.2),
        timeout=10,
        message="a renewed lease",
    )
    return {}


@jobs.register("test.lease_ok")
def _lease_ok(job):
    return {"ok": True}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(jobs, "_send", lambda ids, countdown=0: None)


def _abandoned_job(kind: str, *, lost_attempts: int) -> Job:
    """A running job whose worker died: its lease ran out, its attempts never finished."""
    job = Job.objects.create(
        kind=kind,
        idempotency_key=f"{kind}:{lost_attempts}",
        state=Job.State.RUNNING,
        attempts=lost_attempts,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    for number in range(1, lost_attempts + 1):
        JobAttempt.objects.create(job=job, number=number)
    return job


def test_the_lease_is_renewed_while_the_attempt_runs(settings):
    settings.JOB_LEASE_S, settings.JOB_LEASE_RENEW_S = 0.6, 0.1
    job = jobs.job_enqueue(kind="test.lease_watch", key="watch")

    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED
    assert seen["renewed"]


def test_a_taken_over_job_closes_the_lost_attempt_as_abandoned():
    job = _abandoned_job("test.lease_ok", lost_attempts=1)

    assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED

    lost, taken = JobAttempt.objects.filter(job=job).order_by("number")
    assert (lost.outcome, lost.error_class, lost.decision) == ("abandoned", "WorkerLost", "retry")
    assert lost.finished_at is not None
    assert taken.outcome == "succeeded"


def test_a_running_job_whose_lease_is_alive_is_not_taken_over():
    job = _abandoned_job("test.lease_ok", lost_attempts=1)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=30))

    assert jobs.job_execute(job_id=job.pk) is None
    assert JobAttempt.objects.get(job=job).outcome == "running"


def test_a_job_that_lost_its_worker_three_times_is_dead(settings):
    settings.JOB_MAX_ABANDONED = 3
    job = _abandoned_job("test.lease_ok", lost_attempts=3)

    assert jobs.job_execute(job_id=job.pk) == Job.State.DEAD

    job.refresh_from_db()
    assert job.last_error_class == "WorkerLostRepeatedly"
    outcomes = list(JobAttempt.objects.filter(job=job).values_list("outcome", flat=True))
    assert outcomes == ["abandoned", "abandoned", "abandoned", "failed"]


def test_renewing_an_attempt_that_is_no_longer_the_jobs_fails():
    job = _abandoned_job("test.lease_ok", lost_attempts=2)

    assert not lease.lease_renew(job_id=job.pk, attempt=1)
    assert lease.lease_renew(job_id=job.pk, attempt=2)
