"""The hot path of the webhook door: store the event and its job in one statement, wake a worker.

Why not `jobs.job_enqueue`: it costs a SELECT, a savepointed INSERT and a broker publish per
call (about 4 ms here), three times the bare INSERT a webhook door is measured against
(bench/webhook_intake.py). This module writes the same two rows `job_enqueue` would (a Job of
kind "unitalk.webhook" keyed "unitalk.webhook:<event id>") and leaves its hand-off to
`integration.jobs_dispatch`, which sends every due job whose `enqueued_at` is empty:

- PostgreSQL: one INSERT ... ON CONFLICT DO NOTHING for the event chained (CTE) into the Job
  INSERT: one round trip, atomic, and a duplicate delivery simply inserts nothing.
- Other databases (SQLite in development): the two ORM inserts in one transaction.

Waking the worker: a per-process thread publishes one `jobs_dispatch` per short window
(UNITALK_WEBHOOK_KICK_WINDOW_S) however many events arrived, so the request never waits on the
broker. If a kick is lost, beat's `jobs_dispatch` (every JOB_DISPATCH_INTERVAL_S) sends the job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model

from integration.models import Job
from integration.unitalk.models import UnitalkEvent

logger = logging.getLogger(__name__)

KIND = "unitalk.webhook"


def job_key(event_id: int) -> str:
    return f"{KIND}:{event_id}"


def _columns(instance: Model, skip: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    """Column names and prepared values of a new row, defaults and auto_now included."""
    names, values = [], []
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.attname in skip:
            continue
        names.append(connection.ops.quote_name(field.column))
        values.append(
            field.get_db_prep_save(field.pre_save(instance, add=True), connection=connection)
        )
    return names, values


def _store_postgresql(event: UnitalkEvent, job: Job) -> int | None:
    event_cols, event_vals = _columns(event, ())
    job_cols, job_vals = _columns(job, ("idempotency_key", "payload"))
    # Identifiers come from model metadata (quoted), every value is a parameter.
    sql = (
        f"WITH ev AS (INSERT INTO {UnitalkEvent._meta.db_table} ({', '.join(event_cols)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(event_vals))}) "
        "ON CONFLICT (portal_id, event, call_id) DO NOTHING RETURNING id) "
        f"INSERT INTO {Job._meta.db_table} ({', '.join(job_cols)}, idempotency_key, payload) "
        f"SELECT {', '.join(['%s'] * len(job_vals))}, %s || ev.id::text, "
        "jsonb_build_object('event_id', ev.id) FROM ev RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*event_vals, *job_vals, f"{KIND}:"])
        row = cursor.fetchone()
    return row[0] if row else None


def _store_orm(event: UnitalkEvent, job: Job) -> int | None:
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            job.idempotency_key = job_key(event.pk)
            job.payload = {"event_id": event.pk}
            job.save(force_insert=True)
    except IntegrityError:
        return None
    return job.pk


def event_store(
    *, portal_id: int, event: str, call_id: str, payload: dict[str, Any], received_at: Any
) -> int | None:
    """Insert the event and its processing job; None when (portal, event, call) is a repeat."""
    row = UnitalkEvent(
        portal_id=portal_id, event=event, call_id=call_id, payload=payload, received_at=received_at
    )
    job = Job(
        kind=KIND,
        portal_id=portal_id,
        subject=f"call:{call_id}"[:128],
        next_attempt_at=received_at,
        enqueued_at=None,  # not handed to the broker yet: jobs_dispatch will
    )
    if connection.vendor == "postgresql":
        job_id = _store_postgresql(row, job)
    else:
        job_id = _store_orm(row, job)
    if job_id is None:
        UnitalkEvent.objects.filter(portal_id=portal_id, event=event, call_id=call_id).update(
            duplicates=F("duplicates") + 1
        )
    return job_id


class _Kicker:
    """Coalesces "new jobs are due" into at most one jobs_dispatch per window per process."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def kick(self) -> None:
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            with self._lock:  # first use in this process (gunicorn forks after import)
                if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                    self._wake = threading.Event()
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="unitalk-kicker", daemon=True
                    )
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        from integration.tasks import jobs_dispatch

        while True:
            self._wake.wait()
            time.sleep(settings.UNITALK_WEBHOOK_KICK_WINDOW_S)
            # Cleared before publishing: a job committed from here on sets it again, so
            # every committed job is followed by a publish.
            self._wake.clear()
            try:
                jobs_dispatch.apply_async()
            except Exception:  # broker down: beat's periodic dispatch sends the jobs
                logger.exception("could not wake the job dispatcher")


_kicker = _Kicker()


def kick() -> None:
    """Ask a worker to send due jobs soon (non-blocking)."""
    _kicker.kick()
