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
from functools import cache
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


@cache
def _insert_fields(model: type[Model], skip: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(
        f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in skip
    )


def _values(model: type[Model], given: dict[str, Any], now: Any, skip: tuple[str, ...]) -> list:
    """Prepared values of a new row: `given`, else auto_now stamps, else the field defaults
    (what Model() + save() would write, without building the instance: this is per request)."""
    values = []
    for field in _insert_fields(model, skip):
        if field.attname in given:
            value = given[field.attname]
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        values.append(field.get_db_prep_save(value, connection=connection))
    return values


@cache
def _postgresql_sql(job_skip: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    event_cols = [quote(f.column) for f in _insert_fields(UnitalkEvent, ())]
    job_cols = [quote(f.column) for f in _insert_fields(Job, job_skip)]
    # Identifiers come from model metadata (quoted), every value is a parameter.
    return (
        f"WITH ev AS (INSERT INTO {quote(UnitalkEvent._meta.db_table)} ({', '.join(event_cols)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(event_cols))}) "
        "ON CONFLICT (portal_id, event, call_id) DO NOTHING RETURNING id) "
        f"INSERT INTO {quote(Job._meta.db_table)} ({', '.join(job_cols)}, "
        f"{quote('idempotency_key')}, {quote('payload')}) "
        f"SELECT {', '.join(['%s'] * len(job_cols))}, %s || ev.id::text, "
        "jsonb_build_object('event_id', ev.id) FROM ev RETURNING id"
    )


_JOB_SKIP = ("idempotency_key", "payload")


def _store_postgresql(event: dict[str, Any], job: dict[str, Any], now: Any) -> int | None:
    params = [
        *_values(UnitalkEvent, event, now, ()),
        *_values(Job, job, now, _JOB_SKIP),
        f"{KIND}:",
    ]
    with connection.cursor() as cursor:
        cursor.execute(_postgresql_sql(_JOB_SKIP), params)
        row = cursor.fetchone()
    return row[0] if row else None


def _store_orm(event: dict[str, Any], job: dict[str, Any]) -> int | None:
    try:
        with transaction.atomic():
            row = UnitalkEvent.objects.create(**event)
            created = Job.objects.create(
                **job, idempotency_key=job_key(row.pk), payload={"event_id": row.pk}
            )
    except IntegrityError:
        return None
    return created.pk


def event_store(
    *, portal_id: int, event: str, call_id: str, payload: dict[str, Any], received_at: Any
) -> int | None:
    """Insert the event and its processing job; None when (portal, event, call) is a repeat."""
    event_fields = {
        "portal_id": portal_id,
        "event": event,
        "call_id": call_id,
        "payload": payload,
        "received_at": received_at,
    }
    job_fields = {
        "kind": KIND,
        "portal_id": portal_id,
        "subject": f"call:{call_id}"[:128],
        "next_attempt_at": received_at,
        "enqueued_at": None,  # not handed to the broker yet: jobs_dispatch will
    }
    if connection.vendor == "postgresql":
        job_id = _store_postgresql(event_fields, job_fields, received_at)
    else:
        job_id = _store_orm(event_fields, job_fields)
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
