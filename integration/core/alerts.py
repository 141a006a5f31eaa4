"""Problems people must hear about, stored as `Notification` rows before any delivery.

Raising the same problem again (same tag) bumps one open row instead of adding another, so a
failing loop cannot flood anyone. Delivery to Bitrix24 and e-mail is done by jobs
(notifications/delivery.py); a row exists even when delivery itself is failing.

Raising sits in the foundation, not in notifications/, because every layer raises: provider
clients too (a revoked Bitrix24 token, a refused Unitalk key), and notifications/ delivers
through the Bitrix24 client, so a raise there would make the two import each other.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, QuerySet
from django.utils import timezone

from integration import jobs
from integration.models import Notification

logger = logging.getLogger(__name__)

KIND_DELIVER = "notification.deliver"
KIND_EMAIL = "notification.email"
KIND_DIGEST = "notification.digest"
DELIVERY_KINDS = frozenset({KIND_DELIVER, KIND_EMAIL, KIND_DIGEST})

DEAD_JOBS_KIND = "jobs.dead"
DEAD_JOBS_TAG = "jobs:dead"
#: Problems that stop calls from being synced for everybody: the stakeholders get an e-mail.
CRITICAL_KINDS = frozenset({"unitalk.credentials_invalid", "bitrix.auth", DEAD_JOBS_KIND})


def notification_raise(
    *,
    portal: Any,
    kind: str,
    message: str,
    tag: str | None = None,
    severity: str = Notification.Severity.ERROR,
    user_id: int | None = None,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    log_level: int | None = None,
) -> Notification:
    """Record a problem for the portal's admins (or one user when `user_id` is given).

    `kind` is the message code and `params` its parameters (integration/core/messages.py renders
    them in the reader's language); `message` is the technical detail for logs and "details".
    `log_level` overrides the level of its log line (default: ERROR for errors, else WARNING).
    """
    tag = tag or (f"{kind}:user:{user_id}" if user_id else kind)
    fields = {
        "audience": Notification.Audience.USER if user_id else Notification.Audience.ADMINS,
        "user_id": user_id,
        "kind": kind,
        "severity": severity,
        "message": message,
        "params": params or {},
        "context": context or {},
    }
    with transaction.atomic():
        updated = Notification.objects.filter(
            portal=portal, tag=tag, resolved_at__isnull=True
        ).update(count=F("count") + 1, delivered_at=None, updated_at=timezone.now(), **fields)
        created = False
        if not updated:
            try:
                with transaction.atomic():
                    Notification.objects.create(portal=portal, tag=tag, **fields)
                created = True
            except IntegrityError:  # raised concurrently by another process: bump theirs
                Notification.objects.filter(
                    portal=portal, tag=tag, resolved_at__isnull=True
                ).update(count=F("count") + 1)
        row = Notification.objects.get(portal=portal, tag=tag, resolved_at__isnull=True)
    # The log level is the operator's: WARNING means someone may need to act (docs/operations.md,
    # "Logs"); what only a portal user must hear about (a missed call) is logged as INFO.
    level = log_level or (logging.ERROR if severity in ("error", "critical") else logging.WARNING)
    logger.log(
        level, "notification raised: %s", message, extra={"kind": kind, "tag": tag, "user": user_id}
    )
    transaction.on_commit(partial(_delivery_schedule, row, created))
    return row


def notification_raise_once(
    *,
    portal: Any,
    kind: str,
    message: str,
    tag: str,
    severity: str = Notification.Severity.ERROR,
    context: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Notification:
    """Like `notification_raise` for the admins, but a repeat while the row is open only counts.

    For problems an outsider can trigger at will (a non-admin retrying an install): the admins
    are told once, and a thousand repeats cost a counter update each, not a thousand notices.
    """
    with transaction.atomic():
        repeated = Notification.objects.filter(
            portal=portal, tag=tag, resolved_at__isnull=True
        ).update(count=F("count") + 1)
        if repeated:
            logger.info("notification repeated (not sent again)", extra={"kind": kind, "tag": tag})
            return Notification.objects.get(portal=portal, tag=tag, resolved_at__isnull=True)
        return notification_raise(
            portal=portal,
            kind=kind,
            message=message,
            tag=tag,
            severity=severity,
            context=context,
            params=params,
        )


def notification_resolve(*, portal: Any, tag: str, unless: QuerySet[Any] | None = None) -> int:
    """The problem is over: close its open row (pages drop the banner). `unless`: only while
    that query finds nothing, checked in the same statement."""
    rows = Notification.objects.filter(portal=portal, tag=tag, resolved_at__isnull=True)
    if unless is not None:
        rows = rows.filter(~Exists(unless))
    return rows.update(resolved_at=timezone.now())


def _delivery_schedule(notification: Notification, created: bool) -> None:
    """After commit of a raise: one deliver job per (row, repeat count), one e-mail per row."""
    jobs.job_enqueue(
        kind=KIND_DELIVER,
        key=f"{KIND_DELIVER}:{notification.pk}:{notification.count}",
        portal=notification.portal,
        subject=f"notification:{notification.pk}",
        payload={"notification_id": notification.pk},
    )
    is_critical = (
        notification.kind in CRITICAL_KINDS
        or notification.severity == Notification.Severity.CRITICAL
    )
    if is_critical and notification.emailed_at is None:
        jobs.job_enqueue(
            kind=KIND_EMAIL,
            key=f"{KIND_EMAIL}:{notification.pk}",
            portal=notification.portal,
            subject=f"notification:{notification.pk}",
            payload={"notification_id": notification.pk},
        )
