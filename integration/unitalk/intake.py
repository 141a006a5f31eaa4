"""The hot path of the webhook door: store the event, wake a worker; its job is made later.

The door writes one row, the event, in state "received", and nothing else: not its job (a Job
row carries seven indexes and a foreign-key check) and no broker publish (a `job_enqueue` costs a
SELECT, a savepointed INSERT and a publish, about 4 ms here, several times the bare INSERT the
door is measured against in bench/webhook_intake.py). The event table is an inbox of
`integration.jobs`: `inbox_feed`, run by every `jobs_dispatch`, turns waiting events into jobs
of kind "unitalk.webhook" keyed "unitalk.webhook:<event id>", a thousand per statement, and marks
them "queued". A stored event is therefore never lost: until it has its job it stays "received",
and the partial index `unitalk_event_inbox` finds it.

- PostgreSQL: INSERT ... ON CONFLICT DO NOTHING RETURNING id, so a duplicate delivery inserts
  nothing, as a server-side prepared statement (parsed and planned once per connection).
  DATABASE_PREPARED_STATEMENTS=false turns that off for poolers that cannot carry prepared
  statements (PgBouncer in transaction mode before 1.21).
- Other databases (SQLite in development): an ORM insert.

Waking the worker: a per-process thread runs one `inbox_dispatch` per short window
(UNITALK_WEBHOOK_KICK_WINDOW_S) however many events arrived, right there in the web process:
it turns the waiting events into jobs and publishes those jobs (and a whole `jobs_dispatch` at
most once per JOB_DISPATCH_INTERVAL_S), so the request never waits on the broker and a live
call's event costs one broker hop, not two (it used to publish a `jobs_dispatch` message for a
worker to do the same: a hop and a message of the interactive lane per window,
docs/pipeline.md "Lanes"). If that fails, it publishes the `jobs_dispatch` message as before;
if a kick is lost, beat's `jobs_dispatch` (every JOB_DISPATCH_INTERVAL_S) feeds the inbox.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from functools import cache
from typing import Any

import psycopg
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from integration.core import lanes
from integration.models import Job
from integration.unitalk.models import UnitalkEvent

logger = logging.getLogger(__name__)

KIND = "unitalk.webhook"
FEED_BATCH = 1000


def job_key(event_id: int) -> str:
    return f"{KIND}:{event_id}"


_PER_ROW = object()


@cache
def _row_plan() -> tuple[tuple[Any, Any], ...]:
    """(field, prepared constant or _PER_ROW) per inserted column of an event: a constant
    default is prepared once per process instead of on every request."""
    plan = []
    for field in UnitalkEvent._meta.concrete_fields:
        if field.primary_key:
            continue
        per_row = field.has_default() and callable(field.default)
        constant = (
            _PER_ROW
            if per_row
            else field.get_db_prep_save(field.get_default(), connection=connection)
        )
        plan.append((field, constant))
    return tuple(plan)


def _values(given: dict[str, Any]) -> list[Any]:
    """Prepared values of a new event row: `given`, else the field defaults (what Model() +
    save() would write, without building the instance: this is per request)."""
    values = []
    for field, constant in _row_plan():
        if field.attname in given:
            value = given[field.attname]
        elif constant is not _PER_ROW:
            values.append(constant)
            continue
        else:
            value = field.get_default()
        values.append(field.get_db_prep_save(value, connection=connection))
    return values


@cache
def _postgresql_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field, _ in _row_plan())
    placeholders = ", ".join(["%s"] * len(_row_plan()))
    # Identifiers come from model metadata (quoted), every value is a parameter.
    return (
        f"INSERT INTO {quote(UnitalkEvent._meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({placeholders}) "
        "ON CONFLICT (portal_id, event, call_id) DO NOTHING RETURNING id"
    )


def _store_postgresql(fields: dict[str, Any]) -> int | None:
    sql, params = _postgresql_sql(), _values(fields)
    with connection.cursor() as cursor:  # Django's connection handling and health check
        if not settings.DATABASE_PREPARED_STATEMENTS:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        else:
            # Django's cursors bind parameters client-side and cannot prepare; a plain
            # psycopg cursor on the same connection can.
            with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as raw:
                raw.execute(sql, params, prepare=True)
                row = raw.fetchone()
    return row[0] if row else None


def _store_orm(fields: dict[str, Any]) -> int | None:
    try:
        with transaction.atomic():
            return UnitalkEvent.objects.create(**fields).pk
    except IntegrityError:
        return None


def event_store(
    *, portal_id: int, event: str, call_id: str, payload: dict[str, Any], received_at: Any
) -> int | None:
    """Insert the event (state "received"); None when (portal, event, call) is a repeat."""
    fields = {
        "portal_id": portal_id,
        "event": event,
        "call_id": call_id,
        "payload": payload,
        "received_at": received_at,
    }
    if connection.vendor == "postgresql":
        event_id = _store_postgresql(fields)
    else:
        event_id = _store_orm(fields)
    if event_id is None:
        UnitalkEvent.objects.filter(portal_id=portal_id, event=event, call_id=call_id).update(
            duplicates=F("duplicates") + 1
        )
    return event_id


def _lanes(waiting: list[tuple[int, int, str]]) -> dict[int, str]:
    """Per portal: interactive for live traffic, background for a burst (a backlog replayed
    after an outage is nobody's live call, and must not queue ahead of other portals' clicks)."""
    counts = Counter(portal_id for _, portal_id, _ in waiting)
    burst = settings.UNITALK_WEBHOOK_BURST
    return {
        portal_id: lanes.BACKGROUND if count > burst else lanes.INTERACTIVE
        for portal_id, count in counts.items()
    }


def inbox_feed(*, limit: int = FEED_BATCH) -> int:
    """Give up to `limit` received events their processing jobs; returns how many.

    Concurrent dispatchers take disjoint rows (SKIP LOCKED), and the job's unique key makes a
    second feed of the same event (after a crash between the two writes) insert nothing.
    """
    return len(_inbox_take(limit=limit))


def inbox_dispatch(*, limit: int = FEED_BATCH) -> int:
    """The kicker's work: feed the inbox and publish the jobs this feed made, nothing else.

    A whole `jobs_dispatch` here also scanned every portal's due and held jobs once per window,
    in the web process: under load that was two fifths of gunicorn's time (py-spy, five clicks
    at once in bench/latency.py), and it published other portals' backlog from a web process.
    That scan runs at most once per JOB_DISPATCH_INTERVAL_S from a kick (`dispatch_now`).
    """
    from integration import jobs

    keys = [job_key(event_id) for event_id, _, _ in _inbox_take(limit=limit)]
    if not keys:
        return 0
    # Also a job made by an earlier feed that died before publishing: it has no hand-over yet.
    rows = list(
        Job.objects.filter(idempotency_key__in=keys, enqueued_at__isnull=True).only(
            "pk", "kind", "portal_id", "payload"
        )
    )
    if rows:
        jobs.jobs_hand_over(rows)
    return len(rows)


def _inbox_take(*, limit: int) -> list[tuple[int, int, str]]:
    """Up to `limit` received events turned into jobs (not yet handed over), marked queued:
    their (event id, portal id, call id)."""
    with transaction.atomic():
        waiting = list(
            UnitalkEvent.objects.filter(state=UnitalkEvent.State.RECEIVED)
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", "portal_id", "call_id")[:limit]
        )
        if not waiting:
            return []
        now = timezone.now()
        lane = _lanes(waiting)
        Job.objects.bulk_create(
            [
                Job(
                    kind=KIND,
                    portal_id=portal_id,
                    subject=f"call:{call_id}"[:128],
                    idempotency_key=job_key(event_id),
                    payload={"event_id": event_id, "lane": lane[portal_id]},
                    next_attempt_at=now,
                )
                for event_id, portal_id, call_id in waiting
            ],
            ignore_conflicts=True,
        )
        UnitalkEvent.objects.filter(pk__in=[row[0] for row in waiting]).update(
            state=UnitalkEvent.State.QUEUED
        )
    logger.info("webhook events queued as jobs", extra={"count": len(waiting)})
    return waiting


class _Kicker:
    """Coalesces "new events are waiting" into at most one jobs_dispatch per window per process."""

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
        while True:
            self._wake.wait()
            time.sleep(settings.UNITALK_WEBHOOK_KICK_WINDOW_S)
            # Cleared before dispatching: an event committed from here on sets it again, so
            # every committed event is followed by a dispatch.
            self._wake.clear()
            dispatch_now()


#: When this process last ran a whole jobs_dispatch from a kick (its start counts as one).
_swept_at = time.monotonic()


def dispatch_now() -> None:
    """Feed the inbox and publish its jobs from this process (the kicker's thread), and once
    per JOB_DISPATCH_INTERVAL_S run the whole dispatch; if that fails, ask an interactive worker
    to do it. Never raises: beat's dispatch is the backstop."""
    from integration import jobs
    from integration.tasks import jobs_dispatch

    global _swept_at
    try:
        close_old_connections()  # this thread's connection, kept per CONN_MAX_AGE
        if time.monotonic() - _swept_at < settings.JOB_DISPATCH_INTERVAL_S:
            inbox_dispatch()
            return
        # Now and then the whole dispatch too, as beat's: while webhooks come in, a lost
        # hand-off or a dead host's expired lease is recovered even when beat is down
        # (docs/deploy.md, "beat: exactly one").
        _swept_at = time.monotonic()
        jobs.jobs_dispatch()
        return
    except Exception as exc:
        logger.warning("could not dispatch from the web process, asking a worker: %s", exc)
    try:
        # Live webhooks: the dispatcher that feeds them runs in the interactive lane.
        jobs_dispatch.apply_async(queue=lanes.queue_for(lanes.INTERACTIVE))
    except Exception:  # broker down: beat's periodic dispatch feeds the inbox
        logger.exception("could not wake the job dispatcher")


_kicker = _Kicker()


def kick() -> None:
    """Ask a worker to feed the inbox and send due jobs soon (non-blocking)."""
    _kicker.kick()
