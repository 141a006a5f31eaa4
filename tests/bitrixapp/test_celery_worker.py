import uuid

from bitrixapp.celery import app
from tests.support.processes import celery_worker, running
from tests.support.waiting import wait_until


def test_real_worker_retries_a_failing_task_until_it_completes(tmp_path):
    # Given a real worker process consuming a private queue on the configured broker
    queue = f"test-{uuid.uuid4().hex[:8]}"
    journal = tmp_path / "journal.txt"
    journal.touch()
    argv = celery_worker(queue, include=["tests.support.worker_tasks"])
    with running(argv, log=tmp_path / "worker.log") as worker:
        # When a task that fails on its first attempt is enqueued
        app.send_task("tests.fail_once", args=[str(journal)], queue=queue)

        # Then the worker runs it twice and the second attempt completes
        wait_until(
            lambda: "done" in journal.read_text(),
            timeout=60,
            message="the retried task to complete",
        )
        assert worker.poll() is None, "worker exited early"

    lines = journal.read_text().splitlines()
    assert lines[0].startswith("attempt 1 ")
    assert lines[1].startswith("attempt 2 ")
    assert lines[2] == "done"
    # A separate process did the work, not this test process.
    assert f"pid {__import__('os').getpid()}" not in lines[0]
