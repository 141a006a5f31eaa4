"""Reconciliation with Unitalk's `history/get`: calls whose webhooks never came are merged
from the history, so a lost webhook never loses a call (docs/pipeline.md, docs/unitalk.md §3.4).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bitrixapp.models import Portal
from integration import jobs
from integration.calls.merge import EVENT_RECONCILED, call_merge
from integration.calls.models import Call
from integration.calls.services import call_changed
from integration.core import inputs
from integration.models import Job
from integration.unitalk import client, names, schema
from integration.unitalk.errors import PAUSE_KEY
from integration.unitalk.models import UnitalkConnection
from integration.unitalk.services import (
    connection_credentials,
    connection_for_work,
    connection_status_set,
    connections_to_poll,
)

logger = logging.getLogger(__name__)

KIND_RECONCILE = "unitalk.reconcile"

# --- Reconciliation -----------------------------------------------------------------------------


def reconcile_window(*, connection: UnitalkConnection, now: datetime) -> tuple[datetime, datetime]:
    """The UTC window the next run compares: the last 2 h, reaching back to where the previous
    run stopped (minus an overlap) after downtime, but never further than the backfill limit."""
    start = now - timedelta(seconds=settings.UNITALK_RECONCILE_WINDOW_S)
    if connection.reconciled_until:
        start = min(
            start,
            connection.reconciled_until - timedelta(seconds=settings.UNITALK_RECONCILE_OVERLAP_S),
        )
    return max(start, now - timedelta(seconds=settings.UNITALK_RECONCILE_MAX_BACKFILL_S)), now


def reconcile_portal(*, portal: Portal | Any, now: datetime | None = None) -> dict[str, Any]:
    """Compare history/get with our calls; create or finish what webhooks did not deliver.

    Raises the client's errors (the job runner retries / pauses), CredentialsInvalidError up
    front while the key is refused.
    """
    connection = connection_for_work(portal=portal)
    now = now or timezone.now()
    start, end = reconcile_window(connection=connection, now=now)
    zone = ZoneInfo(connection.timezone)
    history = client.history_get(
        connection_credentials(connection=connection),
        date_from=start.astimezone(zone).replace(tzinfo=None, microsecond=0),
        date_to=end.astimezone(zone).replace(tzinfo=None, microsecond=0),
    )
    ids = [str(item.get("id")) for item in history if item.get("id") is not None]
    dbids = [d for d in (_safe_int(item.get(names.FIELD_DBID)) for item in history) if d]
    known = {
        c.unitalk_call_id: c
        for c in Call.objects.filter(portal=connection.portal_id, unitalk_call_id__in=ids)
    }
    by_dbid = {
        c.unitalk_dbid: c
        for c in Call.objects.filter(portal=connection.portal_id, unitalk_dbid__in=dbids)
    }
    recovered, skipped = 0, 0
    for item in history:
        try:
            parsed = schema.event_parse({"event": names.EVENT_END, "call": item})
        except schema.PayloadError as exc:
            skipped += 1  # a finished-but-malformed or still running record: next run sees it
            logger.info("history record skipped: %s", exc.message)
            continue
        match = by_dbid.get(_safe_int(item.get(names.FIELD_DBID))) or known.get(parsed.call_id)
        if match is not None and match.ended:
            continue
        with transaction.atomic():
            call, changed = call_merge(
                portal_id=connection.portal_id,
                call_id=match.unitalk_call_id if match else parsed.call_id,
                event=EVENT_RECONCILED,
                data=item,
                tz_name=connection.timezone,
                received_at=now,
                reconciled=True,
            )
            if changed:
                recovered += 1
                call_changed(call=call, event=EVENT_RECONCILED)
    UnitalkConnection.objects.filter(pk=connection.pk).update(reconciled_until=end)
    # Unitalk answered with this key: an unreachable or not-yet-checked key works.
    if connection.status in (
        UnitalkConnection.Status.UNREACHABLE,
        UnitalkConnection.Status.UNCHECKED,
    ):
        connection_status_set(connection, UnitalkConnection.Status.OK)
    result = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "history": len(history),
        "recovered": recovered,
        "skipped": skipped,
    }
    logger.info("unitalk reconciliation done", extra=result)
    return result


def _safe_int(value: Any) -> int | None:
    """A number from Unitalk's history/get or users/list answer, or None when it is not one."""
    try:
        return inputs.parse_int_or_none(value, field="value", maximum=inputs.INT64_MAX)
    except inputs.InputError:
        return None


def _resume_stranded(connection: UnitalkConnection) -> None:
    # A job that paused in the instant a new key was being saved misses that resume;
    # the periodic tick resumes anything still paused for a connection that is fine now.
    if Job.objects.filter(
        portal_id=connection.portal_id, state=Job.State.PAUSED, pause_key=PAUSE_KEY
    ).exists():
        jobs.jobs_resume(portal=connection.portal, pause_key=PAUSE_KEY)


def reconcile_enqueue_all(*, now: datetime | None = None) -> int:
    """Beat: one reconciliation job per usable connection (one per interval, by key)."""
    now = now or timezone.now()
    slot = int(now.timestamp() // max(1.0, settings.UNITALK_RECONCILE_EVERY_S))
    count = 0
    for connection in connections_to_poll().select_related("portal"):
        _resume_stranded(connection)
        jobs.job_enqueue(
            kind=KIND_RECONCILE,
            key=f"{KIND_RECONCILE}:{connection.portal_id}:{slot}",
            portal=connection.portal,
            subject=f"portal:{connection.portal_id}",
        )
        count += 1
    return count
