"""Durable jobs through real processes: beat dispatches, a real worker executes."""

import os

import pytest
from django.utils import timezone

from integration import jobs
from integration.models import Job
from tests.support import worker_tasks  # noqa: F401  (registers test.touch here too)
from tests.support.stack import app_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_job_whose_broker_hand_off_was_lost_is_run_by_the_dispatcher(tmp_path):
    # Given a job committed to the database but never handed to the broker
    # (the process crashed between commit and publish)
    mark = tmp_path / "mark.txt"
    job = Job.objects.create(
        kind="test.touch",
        idempotency_key="lost-handoff",
        payload={"path": str(mark)},
        next_attempt_at=timezone.now(),
    )

    # When the app runs with its beat and a worker
    with app_stack(tmp_path, web=False, include=("tests.support.worker_tasks",)):
        # Then beat's dispatcher finds the due job and a worker process completes it
        wait_until(
            lambda: Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED,
            timeout=60,
            message="the lost job to be dispatched and run",
        )

    assert mark.read_text().startswith(f"job {job.pk} pid ")
    assert f"pid {os.getpid()}" not in mark.read_text()


def test_an_enqueued_job_runs_on_the_worker_right_after_commit(tmp_path):
    mark = tmp_path / "mark.txt"
    with app_stack(tmp_path, web=False, beat=False, include=("tests.support.worker_tasks",)):
        job = jobs.job_enqueue(kind="test.touch", key="after-commit", payload={"path": str(mark)})
        wait_until(
            lambda: Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED,
            timeout=60,
            message="the enqueued job to run",
        )
    assert Job.objects.get(pk=job.pk).attempt_rows.count() == 1
