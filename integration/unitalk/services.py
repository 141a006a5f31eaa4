"""Unitalk side services: the connection (key, webhook URL, status) and the operator mapping.

Calls are not Unitalk's business: webhook events become calls in integration/calls/merge.py and
reconciliation with `history/get` is integration/calls/reconcile.py.

Services take keyword-only arguments and are called from views/webhooks (intake only), job
handlers (everything that talks to Unitalk) and admin pages.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bitrixapp.models import Portal
from integration import jobs
from integration.core import alerts, inputs, progress
from integration.core.errors import (
    AuthExpiredError,
    CredentialsInvalidError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from integration.unitalk import client, intake, names, schema
from integration.unitalk import mapping as mapping_rules
from integration.unitalk.errors import PAUSE_KEY
from integration.unitalk.models import OperatorMapping, UnitalkConnection
from integration.unitalk.selectors import (
    WebhookTarget,
    connection_webhook_url,
    secret_digest,
    webhook_target_seen,
)

logger = logging.getLogger(__name__)

TAG_CREDENTIALS = "unitalk:credentials-invalid"
TAG_UNMAPPED_LINES = "unitalk:unmapped-lines"
KIND_OPERATORS_SYNC = "unitalk.operators_sync"
KIND_CONNECTION_TEST = "unitalk.connection_test"


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


def connection_status_set(connection: UnitalkConnection, status: str, reason: str = "") -> None:
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
        connection_status_set(connection, UnitalkConnection.Status.UNREACHABLE, exc.message)
        return {"ok": False, "status": connection.status, "error": exc.message, "operators": 0}
    except IntegrationError as exc:
        return {"ok": False, "status": connection.status, "error": exc.message, "operators": 0}
    connection_status_set(connection, UnitalkConnection.Status.OK)
    return {"ok": True, "status": connection.status, "error": "", "operators": len(users)}


def connection_test_enqueue(*, portal: Portal) -> Any:
    """Queue a Unitalk connection test (the settings page polls the job for its result)."""
    return jobs.job_enqueue(kind=KIND_CONNECTION_TEST, portal=portal, subject=f"portal:{portal.pk}")


def connection_test_run(*, portal: Portal) -> dict[str, Any]:
    """Job `unitalk.connection_test`: connection_test on the portal's stored key."""
    connection = UnitalkConnection.objects.filter(portal=portal).first()
    if connection is None or not connection.api_key:
        return {"ok": False, "status": "", "error": "no Unitalk API key saved", "operators": 0}
    return connection_test(connection=connection)


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


def connections_to_poll():
    """Connections whose Unitalk account is worth asking: an active portal, a key not refused."""
    return UnitalkConnection.objects.filter(
        portal__status=Portal.Status.ACTIVE, status__in=["ok", "unreachable"]
    ).exclude(api_key_digest="")


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

    def step(done: int, name: str) -> None:
        # The settings page shows "step n of 3" while it polls the job (core/progress.py).
        progress.progress_set(
            kind=KIND_OPERATORS_SYNC, portal_id=portal.pk, done=done, total=3, step=name
        )

    step(0, "unitalk")
    unitalk_users = client.users_list(connection_credentials(connection=connection))
    step(1, "bitrix")
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
    step(2, "match")
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
    step(3, "done")
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
    for connection in connections_to_poll().select_related("portal"):
        jobs.job_enqueue(
            kind=KIND_OPERATORS_SYNC,
            key=f"{KIND_OPERATORS_SYNC}:{connection.portal_id}:{slot}",
            portal=connection.portal,
            subject=f"portal:{connection.portal_id}",
        )
        count += 1
    return count
