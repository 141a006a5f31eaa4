"""Reads of the Unitalk side that other parts reuse."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from bitrixapp.models import Portal
from integration.unitalk.models import OperatorMapping, UnitalkConnection


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class WebhookTarget:
    """The few columns the webhook door needs (no decryption on the hot path)."""

    connection_id: int
    portal_id: int
    secret_digest: str
    header_required: bool
    last_webhook_at: datetime | None


# digest -> (expires at, target). Per process; only known secrets are cached, so probing with
# random secrets cannot grow it beyond the number of connections.
_targets: dict[str, tuple[float, WebhookTarget]] = {}
_targets_lock = threading.Lock()


def webhook_target_cache_clear() -> None:
    with _targets_lock:
        _targets.clear()


def webhook_target_for_secret(secret: str) -> WebhookTarget | None:
    """The connection whose webhook URL carries `secret`, or None (uninstalled portals too).

    Cached per process for UNITALK_WEBHOOK_TARGET_CACHE_S seconds: the lookup is a round trip
    on every webhook, and a secret changes only when an admin rotates it or the portal goes
    (both then take effect within that time).
    """
    if not secret or len(secret) > 128:
        return None
    digest = secret_digest(secret)
    now = time.monotonic()
    cached = _targets.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = (
        UnitalkConnection.objects.filter(webhook_secret_digest=digest)
        .exclude(portal__status=Portal.Status.UNINSTALLED)
        .values_list(
            "pk", "portal_id", "webhook_secret_digest", "webhook_header_required", "last_webhook_at"
        )
        .first()
    )
    # The index lookup already matched; comparing again in constant time keeps the check
    # itself free of early exits whatever the database collation does.
    if row is None or not hmac.compare_digest(row[2], digest):
        return None
    target = WebhookTarget(*row)
    ttl = settings.UNITALK_WEBHOOK_TARGET_CACHE_S
    if ttl > 0:
        with _targets_lock:
            _targets[digest] = (now + ttl, target)
    return target


def webhook_target_seen(target: WebhookTarget, when: datetime) -> None:
    """Remember in the cache that "last webhook received" was stamped at `when`."""
    with _targets_lock:
        cached = _targets.get(target.secret_digest)
        if cached is not None:
            _targets[target.secret_digest] = (
                cached[0],
                WebhookTarget(
                    target.connection_id,
                    target.portal_id,
                    target.secret_digest,
                    target.header_required,
                    when,
                ),
            )


def operator_line_for_user(portal: Portal | Any, user_id: int) -> str | None:
    """The Unitalk inner line of Bitrix24 user `user_id`, or None when not mapped."""
    return (
        OperatorMapping.objects.filter(portal=portal, bitrix_user_id=user_id)
        .values_list("line", flat=True)
        .first()
    )


def operator_user_for_line(portal: Portal | Any, line: str) -> int | None:
    """The Bitrix24 user id behind Unitalk inner line `line`, or None when not mapped."""
    return (
        OperatorMapping.objects.filter(portal=portal, line=str(line))
        .values_list("bitrix_user_id", flat=True)
        .first()
    )


# --- The settings page's Unitalk part (key, webhook, mappings, health) ----------------------------


def unitalk_state(*, connection: Any) -> str:
    """The one answer to "does the Unitalk key work?" that every part of the settings page shows.

    "none" (no key), "checking" (saved, Unitalk not asked yet), "ok", "refused", "unreachable".
    """
    if connection is None or not connection.api_key:
        return "none"
    return {
        "ok": "ok",
        "unchecked": "checking",
        "credentials_invalid": "refused",
        "unreachable": "unreachable",
    }.get(connection.status, "checking")


def connection_webhook_url(*, connection: UnitalkConnection) -> str:
    """The URL the admin pastes into Unitalk's "Event handling" page for every event."""
    return f"{settings.APP_BASE_URL}/unitalk/webhook/{connection.webhook_secret}/"


def connection_settings_get(*, portal: Portal) -> dict[str, Any]:
    """The connection as the admin may see it (key: last 4 only), the webhook, the mappings."""
    connection = UnitalkConnection.objects.filter(portal=portal).first()
    return {
        "connection": connection,
        "key_masked": connection.api_key_masked if connection else "",
        "webhook_url": connection_webhook_url(connection=connection) if connection else "",
        "webhook_secret": connection.webhook_secret if connection else "",
        "webhook_header": settings.UNITALK_WEBHOOK_SECRET_HEADER,
        "mappings": list(
            OperatorMapping.objects.filter(portal=portal).order_by("line", "bitrix_user_id")
        ),
    }


def health_get(*, portal: Portal) -> dict[str, Any]:
    """What the settings page shows under "Connection health" (both sides, and the backlog)."""
    from django.utils import timezone

    from integration.models import Job

    connection = UnitalkConnection.objects.filter(portal=portal).first()
    now = timezone.now()
    expires = portal.access_expires_at
    return {
        "bitrix_status": portal.status,
        "bitrix_reason": portal.status_reason,
        "bitrix_token": bool(portal.access_token and portal.refresh_token),
        "bitrix_expires_at": expires,
        "bitrix_expired": bool(expires and expires <= now),
        "unitalk_status": connection.status if connection else "",
        "unitalk_state": unitalk_state(connection=connection),
        "unitalk_reason": connection.status_reason if connection else "",
        "unitalk_key": connection.api_key_masked if connection else "",
        "last_webhook_at": connection.last_webhook_at if connection else None,
        "backlog": Job.objects.filter(portal=portal, state__in=Job.OPEN_STATES).count(),
        "paused": Job.objects.filter(portal=portal, state=Job.State.PAUSED).count(),
        "dead": Job.objects.filter(portal=portal, state=Job.State.DEAD).count(),
    }
