"""Unitalk webhook events into calls: one `Call` row per Unitalk call, merged whatever order
its events arrive in (docs/pipeline.md, docs/unitalk.md §4).

Job `unitalk.webhook` (calls/flow.py) runs `event_process` for each stored delivery.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integration.calls.models import Call
from integration.calls.services import call_changed
from integration.core import inputs
from integration.unitalk import intake, names, schema
from integration.unitalk.models import UnitalkConnection, UnitalkEvent

logger = logging.getLogger(__name__)

KIND_WEBHOOK = intake.KIND
#: The pseudo-event of a call merged from `history/get` by reconciliation.
EVENT_RECONCILED = "RECONCILED"

# --- Events into calls --------------------------------------------------------------------------

_STATUS_FOR_EVENT = {
    names.EVENT_NEW: Call.Status.RINGING,
    names.EVENT_REDIRECT: Call.Status.RINGING,
    names.EVENT_ANSWER: Call.Status.ANSWERED,
    names.EVENT_END: Call.Status.ENDED,
}
_DIRECTION = {
    names.DIRECTION_IN: Call.Direction.IN,
    names.DIRECTION_OUT: Call.Direction.OUT,
    names.DIRECTION_INNER: Call.Direction.INNER,
}
_MERGED_FIELDS = (
    "unitalk_dbid",
    "direction",
    "status",
    "state",
    "cause",
    "ended",
    "client_number",
    "from_number",
    "to_numbers",
    "operator_line",
    "outer_number",
    "group_name",
    "source",
    "meta",
    "started_at",
    "answered_at",
    "ended_at",
    "talk_seconds",
    "full_seconds",
    "recording_url",
    "reconciled",
)


def local_to_utc(stamp: str | None, tz_name: str) -> datetime | None:
    """A Unitalk wall-clock stamp in the connection's zone, as an aware UTC datetime."""
    if not stamp:
        return None
    naive = datetime.strptime(stamp, names.DATETIME_FORMAT)
    return naive.replace(tzinfo=ZoneInfo(tz_name)).astimezone(ZoneInfo("UTC"))


def _int(value: Any, field: str) -> int | None:
    """A number of a stored webhook payload (checked at the door; InputError if not)."""
    return inputs.parse_int_or_none(value, field=field, maximum=inputs.INT64_MAX)


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch in "0123456789")


def _locked_call(portal_id: int, call_id: str) -> Call:
    try:
        with transaction.atomic():
            Call.objects.get_or_create(portal_id=portal_id, unitalk_call_id=call_id)
    except IntegrityError:  # created concurrently by another worker: fine, lock theirs
        pass
    return Call.objects.select_for_update().get(portal_id=portal_id, unitalk_call_id=call_id)


def call_merge(
    *,
    portal_id: int,
    call_id: str,
    event: str,
    data: dict[str, Any],
    tz_name: str,
    received_at: datetime,
    reconciled: bool = False,
) -> tuple[Call, bool]:
    """Merge one Unitalk view of a call (webhook event or history record) into its Call row.

    Monotonic: status only moves ringing → answered → ended, an ended call is never reopened,
    and an older event only fills fields still empty. So any delivery order gives the same end
    state. Returns (call, changed). Call inside a transaction (the row is locked).
    """
    call = _locked_call(portal_id, call_id)
    before = {name: getattr(call, name) for name in _MERGED_FIELDS}
    state = data.get("state") or ""
    if event == EVENT_RECONCILED:
        # A history record with a state is a finished call; without one it is still going.
        event = names.EVENT_END if state else names.EVENT_NEW
    new_status = _STATUS_FOR_EVENT[event]
    advancing = Call.RANK[new_status] >= Call.RANK[Call.Status(call.status)]
    unitalk_direction = data.get("direction")
    to = [str(n) for n in (data.get("to") or [])]
    sender = str(data.get("from") or "")

    def fill(name: str, value: Any) -> None:
        if value not in (None, "", []) and getattr(call, name) in (None, "", []):
            setattr(call, name, value)

    fill("unitalk_dbid", _int(data.get(names.FIELD_DBID), "call.dbid"))
    fill("direction", _DIRECTION.get(str(unitalk_direction), ""))
    fill("from_number", sender)
    fill("to_numbers", to)
    fill("outer_number", data.get("outerNumber"))
    fill("group_name", data.get("lastGroupName"))
    fill("source", data.get("source"))
    fill("meta", data.get(names.FIELD_META))
    fill("started_at", local_to_utc(data.get("date"), tz_name))
    if unitalk_direction == names.DIRECTION_IN:
        fill("client_number", _digits(sender))
        line = to[0] if to else ""
    elif unitalk_direction == names.DIRECTION_OUT:
        fill("client_number", _digits(to[0]) if to else "")
        line = sender
    else:
        line = sender
    # The line that rang first / dialled; later events (redirect, answer, end) name the
    # extension that has the call now, and override while the call moves forward.
    if advancing and event != names.EVENT_NEW and line:
        call.operator_line = line
    fill("operator_line", line)

    if advancing:
        call.status = new_status
        call.last_event = event
        if event == names.EVENT_ANSWER:
            fill("answered_at", received_at)
        if event == names.EVENT_END:
            _merge_end(call, data, state, to, received_at)
    changed = any(getattr(call, n) != before[n] for n in _MERGED_FIELDS)
    if changed and reconciled:
        call.reconciled = True  # history filled in what the webhooks did not bring
    if changed:
        call.save()
    return call, changed


def _merge_end(
    call: Call, data: dict[str, Any], state: str, to: list[str], received_at: datetime
) -> None:
    call.ended = True
    call.state = state
    call.cause = (
        _int(data.get("cause"), "call.cause") if data.get("cause") is not None else call.cause
    )
    call.full_seconds = _int(data.get("secondsFullTime"), "call.secondsFullTime")
    call.talk_seconds = _int(data.get("secondsTalk"), "call.secondsTalk")
    if data.get("link"):
        call.recording_url = data["link"]
    if to:
        call.to_numbers = to
    if call.direction == Call.Direction.IN and state != names.STATE_ANSWER:
        call.direction = Call.Direction.MISSED
    if call.started_at and call.full_seconds is not None:
        call.ended_at = call.started_at + timedelta(seconds=call.full_seconds)
        if (
            state == names.STATE_ANSWER
            and call.answered_at is None
            and call.talk_seconds is not None
        ):
            call.answered_at = call.ended_at - timedelta(seconds=call.talk_seconds)
    elif call.ended_at is None:
        call.ended_at = received_at


def event_process(*, event_id: int) -> dict[str, Any]:
    """Merge one stored webhook event into its call and fire `call_changed` (worker side)."""
    row = UnitalkEvent.objects.get(pk=event_id)
    if row.state == UnitalkEvent.State.PROCESSED:
        return {"skipped": "already processed"}
    parsed = schema.event_parse(row.payload)
    tz_name = (
        UnitalkConnection.objects.filter(portal_id=row.portal_id)
        .values_list("timezone", flat=True)
        .first()
    ) or settings.UNITALK_DEFAULT_TIMEZONE
    with transaction.atomic():
        call, changed = call_merge(
            portal_id=row.portal_id,
            call_id=parsed.call_id,
            event=parsed.event,
            data=parsed.call,
            tz_name=tz_name,
            received_at=row.received_at,
        )
        UnitalkEvent.objects.filter(pk=row.pk).update(
            state=UnitalkEvent.State.PROCESSED, processed_at=timezone.now(), error=""
        )
        if changed:
            call_changed(call=call, event=parsed.event)
    # The line and the end travel in the result for what follows the job (the agent's state,
    # a campaign's attempt: agents/flow.py, campaigns/flow.py), which then reads nothing back.
    return {
        "call": call.pk,
        "changed": changed,
        "status": call.status,
        "line": call.operator_line,
        "ended": call.ended,
    }


def event_failed(*, event_id: int, error: str) -> None:
    UnitalkEvent.objects.filter(pk=event_id).update(
        state=UnitalkEvent.State.FAILED, error=error[:2000]
    )
