"""Unitalk side services: the connection (key, webhook URL), webhook events into calls, the
operator mapping, and reconciliation with `history/get`.

Services take keyword-only arguments and are called from views/webhooks (intake only), job
handlers (everything that talks to Unitalk) and admin pages.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bitrixapp.models import Portal
from integration import alerts, inputs, jobs
from integration.calls.models import Call
from integration.calls.services import call_changed
from integration.errors import (
    AuthExpiredError,
    CredentialsInvalidError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from integration.models import Job
from integration.unitalk import client, intake, names, schema
from integration.unitalk import mapping as mapping_rules
from integration.unitalk.errors import PAUSE_KEY
from integration.unitalk.models import OperatorMapping, UnitalkConnection, UnitalkEvent
from integration.unitalk.selectors import WebhookTarget, secret_digest, webhook_target_seen

logger = logging.getLogger(__name__)

TAG_CREDENTIALS = "unitalk:credentials-invalid"
TAG_UNMAPPED_LINES = "unitalk:unmapped-lines"
KIND_WEBHOOK = intake.KIND
KIND_RECONCILE = "unitalk.reconcile"
KIND_OPERATORS_SYNC = "unitalk.operators_sync"
EVENT_RECONCILED = "RECONCILED"


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


# --- Connection ---------------------------------------------------------------------------------


def connection_create(*, portal: Portal, api_key: str = "", tz_name: str | None = None):
    """The portal's Unitalk connection with a fresh webhook secret (one per portal)."""
    secret = secrets.token_urlsafe(32)
    return UnitalkConnection.objects.create(
        portal=portal,
        api_key=api_key.strip(),
        api_key_digest=key_digest(api_key.strip()) if api_key.strip() else "",
        webhook_secret=secret,
        webhook_secret_digest=secret_digest(secret),
        timezone=tz_name or settings.UNITALK_DEFAULT_TIMEZONE,
    )


def connection_save_key(*, portal: Portal, api_key: str) -> UnitalkConnection:
    """Store a (new) API key: status ok, notification resolved, paused Unitalk work resumed."""
    api_key = api_key.strip()
    if not api_key:
        raise ValueError("the Unitalk API key must not be empty")
    with transaction.atomic():
        connection = UnitalkConnection.objects.select_for_update().filter(portal=portal).first()
        if connection is None:
            connection = connection_create(portal=portal)
        connection.api_key = api_key
        connection.api_key_digest = key_digest(api_key)
        connection.status = UnitalkConnection.Status.UNCHECKED
        connection.status_reason = ""
        connection.status_changed_at = timezone.now()
        connection.save()
        alerts.notification_resolve(portal=portal, tag=TAG_CREDENTIALS)
        resumed = jobs.jobs_resume(portal=portal, pause_key=PAUSE_KEY)
    logger.info(
        "unitalk key saved (%s), %d paused jobs resumed", connection.api_key_masked, resumed
    )
    return connection


def connection_webhook_url(*, connection: UnitalkConnection) -> str:
    """The URL the admin pastes into Unitalk's "Event handling" page for every event."""
    return f"{settings.APP_BASE_URL}/unitalk/webhook/{connection.webhook_secret}/"


def connection_rotate_webhook_secret(*, connection: UnitalkConnection) -> str:
    """A new webhook secret (the old URL stops working within UNITALK_WEBHOOK_TARGET_CACHE_S).

    Returns the new webhook URL, which the admin must paste into Unitalk's event handlers.
    """
    secret = secrets.token_urlsafe(32)
    connection.webhook_secret = secret
    connection.webhook_secret_digest = secret_digest(secret)
    connection.save(update_fields=["webhook_secret", "webhook_secret_digest", "updated_at"])
    return connection_webhook_url(connection=connection)


def connection_mark_invalid(*, connection_id: int, api_key: str, reason: str) -> None:
    """Unitalk refused `api_key` for good: mark the connection and tell the portal's admins.

    Raises AuthExpiredError (retry soon) instead when the stored key is no longer `api_key`:
    an admin replaced it while the request was in flight, so nothing must be paused.
    """
    now = timezone.now()
    updated = UnitalkConnection.objects.filter(
        pk=connection_id, api_key_digest=key_digest(api_key)
    ).update(
        status=UnitalkConnection.Status.CREDENTIALS_INVALID,
        status_reason=reason[:500],
        status_changed_at=now,
    )
    if not updated:
        raise AuthExpiredError("unitalk key was replaced meanwhile", service="unitalk")
    connection = UnitalkConnection.objects.select_related("portal").get(pk=connection_id)
    alerts.notification_raise(
        portal=connection.portal,
        kind="unitalk.credentials_invalid",
        tag=TAG_CREDENTIALS,
        message=(
            f"Unitalk refused the API key {connection.api_key_masked}. Calls are not synced "
            "until a valid key is saved in the app settings; nothing is lost meanwhile."
        ),
        context={"reason": reason[:500]},
        params={"key": connection.api_key_masked},
    )


def connection_credentials(*, connection: UnitalkConnection) -> client.Credentials:
    """Credentials for the client, bound to this connection's stored key."""

    def reload() -> str:
        return (
            UnitalkConnection.objects.filter(pk=connection.pk)
            .values_list("api_key", flat=True)
            .get()
        )

    def on_invalid(api_key: str, reason: str) -> None:
        connection_mark_invalid(connection_id=connection.pk, api_key=api_key, reason=reason)

    return client.Credentials(api_key=connection.api_key, reload=reload, on_invalid=on_invalid)


def connection_for_work(*, portal: Portal | Any) -> UnitalkConnection:
    """The connection a Unitalk job may use, or the error that pauses the job without a request.

    Raises CredentialsInvalidError(pause_key="unitalk") while the key is missing or refused,
    PermanentError when the portal has no Unitalk connection at all.
    """
    connection = UnitalkConnection.objects.filter(portal=portal).first()
    if connection is None:
        raise PermanentError("portal has no Unitalk connection", service="unitalk")
    if not connection.api_key:
        raise CredentialsInvalidError(
            "no Unitalk API key saved", pause_key=PAUSE_KEY, service="unitalk"
        )
    if connection.status == UnitalkConnection.Status.CREDENTIALS_INVALID:
        raise CredentialsInvalidError(
            "Unitalk API key was refused; waiting for a new one",
            pause_key=PAUSE_KEY,
            service="unitalk",
        )
    return connection


def _set_status(connection: UnitalkConnection, status: str, reason: str = "") -> None:
    if connection.status == status and connection.status_reason == reason:
        return
    connection.status, connection.status_reason = status, reason[:500]
    connection.status_changed_at = timezone.now()
    UnitalkConnection.objects.filter(pk=connection.pk).update(
        status=status, status_reason=reason[:500], status_changed_at=connection.status_changed_at
    )


def connection_test(*, connection: UnitalkConnection) -> dict[str, Any]:
    """One cheap request (users/list) to check key and reachability; updates the status.

    Returns {"ok": bool, "status": ..., "error": str, "operators": n}. Never raises for
    Unitalk's answers; it is meant for a "Test connection" button.
    """
    try:
        users = client.users_list(connection_credentials(connection=connection))
    except CredentialsInvalidError as exc:
        connection.refresh_from_db()
        return {"ok": False, "status": connection.status, "error": exc.message, "operators": 0}
    except TransientError as exc:
        _set_status(connection, UnitalkConnection.Status.UNREACHABLE, exc.message)
        return {"ok": False, "status": connection.status, "error": exc.message, "operators": 0}
    except IntegrationError as exc:
        return {"ok": False, "status": connection.status, "error": exc.message, "operators": 0}
    _set_status(connection, UnitalkConnection.Status.OK)
    return {"ok": True, "status": connection.status, "error": "", "operators": len(users)}


# --- Webhook intake -----------------------------------------------------------------------------


def event_receive(*, target: WebhookTarget, parsed: schema.WebhookEvent, raw: dict) -> bool:
    """Store one delivery and wake a worker (which gives it its job); False when a repeat.

    One INSERT statement (see `intake`), plus at most once a minute the "last webhook received"
    stamp: this runs inside Unitalk's webhook request.
    """
    now = timezone.now()
    event_id = intake.event_store(
        portal_id=target.portal_id,
        event=parsed.event,
        call_id=parsed.call_id,
        payload=raw,
        received_at=now,
    )
    if event_id is None:
        return False
    intake.kick()
    seen_every = timedelta(seconds=settings.UNITALK_WEBHOOK_SEEN_EVERY_S)
    if target.last_webhook_at is None or now - target.last_webhook_at >= seen_every:
        UnitalkConnection.objects.filter(pk=target.connection_id).update(last_webhook_at=now)
        webhook_target_seen(target, now)
    return True


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
    return {"call": call.pk, "changed": changed, "status": call.status}


def event_failed(*, event_id: int, error: str) -> None:
    UnitalkEvent.objects.filter(pk=event_id).update(
        state=UnitalkEvent.State.FAILED, error=error[:2000]
    )


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
    if connection.status in (
        UnitalkConnection.Status.UNREACHABLE,
        UnitalkConnection.Status.UNCHECKED,
    ):
        _set_status(connection, UnitalkConnection.Status.OK)
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


def _connections_to_poll():
    return UnitalkConnection.objects.filter(
        portal__status=Portal.Status.ACTIVE, status__in=["ok", "unreachable"]
    ).exclude(api_key_digest="")


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
    for connection in _connections_to_poll().select_related("portal"):
        _resume_stranded(connection)
        jobs.job_enqueue(
            kind=KIND_RECONCILE,
            key=f"{KIND_RECONCILE}:{connection.portal_id}:{slot}",
            portal=connection.portal,
            subject=f"portal:{connection.portal_id}",
        )
        count += 1
    return count


# --- Operator mapping ---------------------------------------------------------------------------


def _bitrix_users(portal: Portal) -> list[dict[str, Any]]:
    """Active Bitrix24 users with their UF_PHONE_INNER (through the Bitrix24 client)."""
    from integration.bitrix import client as bitrix_client

    return list(bitrix_client.list_all(portal, "user.get", {"ACTIVE": True}))


def operators_sync(*, portal: Portal) -> dict[str, Any]:
    """Match Unitalk inner lines with Bitrix24 users by UF_PHONE_INNER.

    Manual mappings win: their user and line are left alone. Auto mappings follow the data
    (created, moved, removed). Lines with no user are reported to the portal's admins.
    """
    connection = connection_for_work(portal=portal)
    unitalk_users = client.users_list(connection_credentials(connection=connection))
    lines: dict[str, str] = {}
    for user in unitalk_users:
        line = str(user.get(names.USER_LINE_FIELD) or "").strip()
        if line:
            name = " ".join(str(user.get(k) or "") for k in ("firstName", "lastName")).strip()
            lines[line] = name
    wanted: dict[str, int] = {}
    for user in _bitrix_users(portal):
        inner = str(user.get("UF_PHONE_INNER") or "").strip()
        user_id = inputs.positive_id_or_none(user.get("ID"))
        if inner in lines and inner not in wanted and user_id:
            wanted[inner] = user_id
    with transaction.atomic():
        existing = list(OperatorMapping.objects.select_for_update().filter(portal=portal))
        manual = [m for m in existing if m.source == OperatorMapping.Source.MANUAL]
        manual_lines = {m.line for m in manual}
        manual_users = {m.bitrix_user_id for m in manual}
        wanted = {
            line: user_id
            for line, user_id in wanted.items()
            if line not in manual_lines and user_id not in manual_users
        }
        stale = [
            m.pk
            for m in existing
            if m.source == OperatorMapping.Source.AUTO and wanted.get(m.line) != m.bitrix_user_id
        ]
        OperatorMapping.objects.filter(pk__in=stale).delete()
        kept = {m.line for m in existing if m.pk not in stale}
        created = [
            OperatorMapping(
                portal=portal, bitrix_user_id=user_id, line=line, name=lines.get(line, "")
            )
            for line, user_id in wanted.items()
            if line not in kept
        ]
        OperatorMapping.objects.bulk_create(created)
    unmapped = sorted(set(lines) - set(wanted) - manual_lines)
    if unmapped:
        alerts.notification_raise(
            portal=portal,
            kind="unitalk.unmapped_lines",
            tag=TAG_UNMAPPED_LINES,
            severity="warning",
            message=(
                "Unitalk inner lines without a Bitrix24 user: "
                + ", ".join(unmapped)
                + ". Set the user's internal phone (UF_PHONE_INNER) or map them by hand."
            ),
            context={"lines": unmapped},
            params={"lines": unmapped},
        )
    else:
        alerts.notification_resolve(portal=portal, tag=TAG_UNMAPPED_LINES)
    return {
        "lines": len(lines),
        "created": len(created),
        "removed": len(stale),
        "unmapped": unmapped,
    }


def operator_map_manual(*, portal: Portal, bitrix_user_id: int, line: str) -> OperatorMapping:
    """An admin maps a user to a line by hand; it replaces any mapping of either side."""
    line = str(line).strip()
    with transaction.atomic():
        OperatorMapping.objects.filter(portal=portal, line=line).exclude(
            bitrix_user_id=bitrix_user_id
        ).delete()
        mapping, _ = OperatorMapping.objects.update_or_create(
            portal=portal,
            bitrix_user_id=bitrix_user_id,
            defaults={"line": line, "source": OperatorMapping.Source.MANUAL},
        )
        mapping_rules.unmapped_lines_recheck(portal=portal, tag=TAG_UNMAPPED_LINES)
    return mapping


def operator_unmap(*, portal: Portal, bitrix_user_id: int) -> int:
    deleted, _ = OperatorMapping.objects.filter(
        portal=portal, bitrix_user_id=bitrix_user_id
    ).delete()
    return deleted


def operators_sync_enqueue_all(*, now: datetime | None = None) -> int:
    """Beat: one operator sync job per usable connection (one per interval, by key)."""
    now = now or timezone.now()
    slot = int(now.timestamp() // max(1.0, settings.UNITALK_OPERATORS_SYNC_EVERY_S))
    count = 0
    for connection in _connections_to_poll().select_related("portal"):
        jobs.job_enqueue(
            kind=KIND_OPERATORS_SYNC,
            key=f"{KIND_OPERATORS_SYNC}:{connection.portal_id}:{slot}",
            portal=connection.portal,
            subject=f"portal:{connection.portal_id}",
        )
        count += 1
    return count
