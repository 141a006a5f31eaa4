"""A worker SIGKILLed mid-job: the job is taken over within seconds, exactly once.

Real processes (tests/support/stack.py): worker A runs a long job, worker B idles on the same
queue, beat dispatches. While A lives it renews the job's lease (B does not take the job);
after A is killed the lease runs out, beat hands the job to B, and the attempt A left behind is
closed as abandoned (integration/lease.py).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from integration import jobs
from integration.models import Job, JobAttempt
from tests.support import worker_tasks  # noqa: F401  (registers test.hold here too)
from tests.support.processes import celery_worker, running
from tests.support.stack import app_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LEASE_S = 3.0
ENV = {"JOB_LEASE_S": str(LEASE_S), "JOB_LEASE_RENEW_S": "0.5", "JOB_DISPATCH_INTERVAL_S": "1"}
INCLUDE = ("tests.support.worker_tasks",)


def test_a_killed_workers_job_is_taken_over_within_seconds_and_its_attempt_closed(tmp_path):
    journal, release = tmp_path / "journal.txt", tmp_path / "release"
    with app_stack(tmp_path, web=False, env=ENV, include=INCLUDE) as stack:
        job = jobs.job_enqueue(
            kind="test.hold",
            key="takeover",
            payload={"journal": str(journal), "release": str(release)},
        )
        wait_until(
            lambda: journal.exists() and "start attempt 1" in journal.read_text(), timeout=30
        )
        claimed_lease = Job.objects.get(pk=job.pk).lease_expires_at
        queue = stack.env["CELERY_TASK_DEFAULT_QUEUE"]
        with running(
            celery_worker(queue, include=INCLUDE), env=stack.env, log=tmp_path / "worker-b.log"
        ):
            wait_until(lambda: "ready." in (tmp_path / "worker-b.log").read_text(), timeout=60)

            # while worker A lives, it keeps the lease: past its first expiry, nobody takes over
            wait_until(
                lambda: (
                    Job.objects.get(pk=job.pk).lease_expires_at
                    > claimed_lease + timedelta(seconds=LEASE_S)
                ),
                timeout=30,
                message="the lease renewed past its first expiry",
            )
            assert Job.objects.get(pk=job.pk).attempts == 1

            # when worker A is killed mid-job
            os.killpg(stack.procs["worker"].pid, signal.SIGKILL)
            stack.procs["worker"].wait()
            killed_at = time.time()

            # then worker B takes the job over within seconds
            second = wait_until(
                lambda: JobAttempt.objects.filter(job_id=job.pk, number=2).first(),
                timeout=30,
                message="a second attempt on worker B",
            )
            takeover_s = second.started_at.timestamp() - killed_at
            release.touch()
            wait_until(
                lambda: Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED,
                timeout=30,
                message="the job finished by worker B",
            )
    print(
        f"\ntakeover after SIGKILL: {takeover_s:.1f} s "
        f"(JOB_LEASE_S={LEASE_S:g}, JOB_LEASE_RENEW_S=0.5, JOB_DISPATCH_INTERVAL_S=1)"
    )
    assert 0 < takeover_s < LEASE_S + 4
    first, second = JobAttempt.objects.filter(job_id=job.pk).order_by("number")
    assert (first.outcome, first.error_class) == (JobAttempt.Outcome.ABANDONED, "WorkerLost")
    assert first.finished_at >= second.started_at
    assert second.outcome == JobAttempt.Outcome.SUCCEEDED
    assert Job.objects.get(pk=job.pk).attempts == 2
    lines = journal.read_text().splitlines()
    assert [line.split(" pid ")[0] for line in lines] == [
        "start attempt 1",
        "start attempt 2",
        "done attempt 2",
    ]
    assert lines[0].split(" pid ")[1] != lines[1].split(" pid ")[1]
    assert "job taken over from a lost worker" in (tmp_path / "worker-b.log").read_text()
