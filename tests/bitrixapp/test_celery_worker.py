import uuid

import pytest

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


def test_a_worker_keeps_its_database_connection_from_one_task_to_the_next(tmp_path):
    # Given a real worker (Celery's Django fixup alone would reconnect for every task)
    from django.db import connection

    queue = f"test-{uuid.uuid4().hex[:8]}"
    journal = tmp_path / "sessions.txt"
    journal.touch()
    # production's CONN_MAX_AGE (test stacks set 0 so that no process holds the test database)
    with running(celery_worker(queue, include=["tests.support.worker_tasks"]),
                 env={"DATABASE_CONN_MAX_AGE": "60"}, log=tmp_path / "worker.log"):  # fmt: skip
        # When it runs two tasks one after the other
        for n in (1, 2):
            app.send_task("tests.db_session", args=[str(journal)], queue=queue)
            wait_until(
                lambda n=n: len(journal.read_text().split()) == n,
                timeout=60,
                message=f"task {n} to run",
            )
    # Then both ran on the same database session (docs/pipeline.md, "Connections")
    sessions = journal.read_text().split()
    if connection.vendor == "postgresql":  # SQLite opens its file per task (CONN_MAX_AGE 0)
        assert sessions[0] == sessions[1] != "0"


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_workers_startup_objects_are_out_of_the_garbage_collectors_reach(tmp_path, pool):
    # Given a real worker of each pool the Procfile runs (a full collection walked ~100,000
    # startup objects, 30-90 ms with every thread stopped: docs/pipeline.md, "Pauses")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    journal = tmp_path / "frozen.txt"
    journal.touch()
    argv = [*celery_worker(queue, include=["tests.support.worker_tasks"]), "--pool", pool]
    with running(argv, log=tmp_path / "worker.log"):
        # When a task looks at the process it runs in
        app.send_task("tests.gc_frozen", args=[str(journal)], queue=queue)
        wait_until(lambda: journal.read_text().strip(), timeout=60, message="the task to run")
    # Then what was loaded at start is frozen there
    assert int(journal.read_text()) > 10_000
