"""A running attempt's lease, kept alive while its worker lives; takeover when it does not.

A claim gives the attempt a short lease (`JOB_LEASE_S`, 10 s). While the handler runs, a thread
in the same worker process renews it every `JOB_LEASE_RENEW_S`. A worker that dies (SIGKILL,
OOM, power loss) stops renewing: within `JOB_LEASE_S` the job is claimable again and beat's
dispatcher (every `JOB_DISPATCH_INTERVAL_S`) hands it to a live worker. The broker's own
redelivery is not waited for: Redis redelivers unacknowledged messages only after its
visibility timeout (an hour). The claim itself stays the one conditional UPDATE in
`integration.jobs`, so an attempt still runs at most once at a time (docs/pipeline.md).

The taker closes the lost attempt's row as `abandoned` (it never finishes on its own), and a job
that keeps killing its workers is given up after `JOB_MAX_ABANDONED` such attempts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from integration.core.errors import PermanentError
from integration.models import Job, JobAttempt

logger = logging.getLogger(__name__)


class WorkerLostRepeatedly(PermanentError):
    """The job's attempts were abandoned by dying workers too often: it is likely the cause."""


def lease_length() -> timedelta:
    return timedelta(seconds=float(settings.JOB_LEASE_S))


def _renew_every() -> float:
    # At least three renewals per lease: one slow UPDATE does not lose it.
    return min(float(settings.JOB_LEASE_RENEW_S), float(settings.JOB_LEASE_S) / 3)


def lease_renew(*, job_id: int, attempt: int) -> bool:
    """Extend the lease of attempt `attempt` of a running job; False if it is no longer ours."""
    return bool(
        Job.objects.filter(pk=job_id, state=Job.State.RUNNING, attempts=attempt).update(
            lease_expires_at=timezone.now() + lease_length()
        )
    )


class _Keeper(threading.Thread):
    def __init__(self, job_id: int, attempt: int) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.job_id, self.attempt = job_id, attempt
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(_renew_every()):
                try:
                    kept = lease_renew(job_id=self.job_id, attempt=self.attempt)
                except Exception as exc:  # a database blip: the next renewal may succeed
                    logger.warning(
                        "job lease not renewed: %s",
                        exc,
                        extra={"job": self.job_id, "attempt": self.attempt},
                    )
                    continue
                if not kept and not self.stopped.is_set():
                    logger.warning(
                        "job lease lost while its attempt runs (taken over or cancelled)",
                        extra={"job": self.job_id, "attempt": self.attempt},
                    )
                    return
        finally:
            connection.close()  # this thread's own database connection


@contextmanager
def lease_kept(*, job_id: int, attempt: int) -> Iterator[None]:
    """Renew the lease of this attempt for as long as the block runs.

    Inside a transaction (a test calling the engine directly) nothing is renewed: the keeper's
    own connection could not see the uncommitted claim, it would only wait on its row lock.
    """
    if connection.in_atomic_block:
        yield
        return
    keeper = _Keeper(job_id, attempt)
    keeper.start()
    try:
        yield
    finally:
        keeper.stopped.set()
        keeper.join(timeout=5)


def attempts_abandon(*, job: Job, number: int) -> int:
    """Close the attempts before `number` that are still `running`: their worker is gone (the job
    was claimable, so their lease ran out). Returns how many attempts of the job were abandoned
    in all when this claim is a takeover, else 0."""
    if number <= 1:
        return 0  # a first attempt has nothing before it: no query on the common path
    now = timezone.now()
    lost = list(
        JobAttempt.objects.filter(
            job=job, outcome=JobAttempt.Outcome.RUNNING, number__lt=number
        ).values_list("number", "started_at")
    )
    if not lost:
        return 0  # not a takeover: earlier losses were judged when they were taken over
    JobAttempt.objects.filter(
        job=job, outcome=JobAttempt.Outcome.RUNNING, number__lt=number
    ).update(
        outcome=JobAttempt.Outcome.ABANDONED,
        finished_at=now,
        error_class="WorkerLost",
        error="its worker stopped renewing the lease (killed, out of memory or cut off)",
        decision="retry",
    )
    for lost_number, started_at in lost:
        logger.warning(
            "job taken over from a lost worker",
            extra={
                "kind": job.kind,
                "abandoned_attempt": lost_number,
                "attempt": number,
                "abandoned_after_s": round((now - started_at).total_seconds(), 3),
            },
        )
    return JobAttempt.objects.filter(job=job, outcome=JobAttempt.Outcome.ABANDONED).count()
