"""Tasks loaded only into worker processes that tests start (`celery worker -I ...`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bitrixapp.celery import app
from integration import jobs


@app.task(bind=True, name="tests.fail_once", max_retries=3)
def fail_once(self: Any, journal: str) -> None:
    """Fails on its first delivery, succeeds on the retry; each attempt is journaled."""
    path = Path(journal)
    attempt = self.request.retries + 1
    with path.open("a") as fh:
        fh.write(f"attempt {attempt} pid {os.getpid()}\n")
    if attempt == 1:
        raise self.retry(exc=RuntimeError("first attempt fails on purpose"), countdown=0.2)
    with path.open("a") as fh:
        fh.write("done\n")


@jobs.register("test.touch")
def touch(job: Any) -> dict[str, str]:
    """A job that leaves a mark, so tests can see a real worker ran it."""
    Path(job.payload["path"]).write_text(f"job {job.pk} pid {os.getpid()}\n")
    return {"touched": job.payload["path"]}


@jobs.register("test.hold")
def hold(job: Any) -> dict[str, Any]:
    """A long job: notes each start (pid) in its journal, then runs until `release` exists."""
    journal, release = Path(job.payload["journal"]), Path(job.payload["release"])
    with journal.open("a") as fh:
        fh.write(f"start attempt {job.attempts} pid {os.getpid()}\n")
    deadline = time.monotonic() + float(job.payload.get("max_s", 60))
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the job's own work, simulated: waiting for the test's signal
    with journal.open("a") as fh:
        fh.write(f"done attempt {job.attempts} pid {os.getpid()}\n")
    return {"attempt": job.attempts}


@app.task(name="tests.busy")
def busy(journal: str, seconds: float) -> None:
    """Holds a worker slot (a slow Bitrix24 call, say) so a shutdown has a running task."""
    Path(journal).write_text("started\n")
    time.sleep(seconds)
    with Path(journal).open("a") as fh:
        fh.write("finished\n")


@app.task(name="tests.db_session")
def db_session(journal: str) -> None:
    """Notes which database session the task ran on (PostgreSQL's backend pid)."""
    from django.db import connection

    with connection.cursor() as cursor:
        vendor_pid = "SELECT pg_backend_pid()" if connection.vendor == "postgresql" else "SELECT 0"
        cursor.execute(vendor_pid)
        (pid,) = cursor.fetchone()
    with Path(journal).open("a") as fh:
        fh.write(f"{pid}\n")


@app.task(name="tests.gc_frozen")
def gc_frozen(journal: str) -> None:
    """Notes how many objects the garbage collector no longer walks in the running process."""
    import gc

    with Path(journal).open("a") as fh:
        fh.write(f"{gc.get_freeze_count()}\n")
