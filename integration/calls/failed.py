"""The managers' failed-call lists: open, retry, resolve, and the reads the pages need.

Items are opened by the pipeline (dial failed for good, missed inbound call, CRM update dead
after retries) and closed by people (resolve), by a successful retry of their job, or by the
pipeline (an answered outgoing call to a missed number). One open item per problem: opening
the same problem again counts an occurrence instead of adding a row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from integration import jobs
from integration.calls.models import CallSync, FailedCall
from integration.core import alerts
from integration.models import Job

logger = logging.getLogger(__name__)

OPEN_STATES = (FailedCall.State.OPEN, FailedCall.State.RETRYING)

#: Declared by other capabilities (routing/flow.py: the callback in the autodialer,
#: docs/routing.md "Callbacks in the dialer"); the lists know nothing of them.
CallbackOpened = Callable[..., object]
CallbacksResolved = Callable[..., object]
_opened_hooks: list[CallbackOpened] = []
_resolved_hooks: list[CallbacksResolved] = []


def on_callback_opened(hook: CallbackOpened) -> CallbackOpened:
    """Declare `hook(item=)`: a "call back" item (kind missed) was opened or counted again.
    Must be idempotent: it is asked again for an item it has seen."""
    if hook not in _opened_hooks:
        _opened_hooks.append(hook)
    return hook


def on_callbacks_resolved(hook: CallbacksResolved) -> CallbacksResolved:
    """Declare `hook(item_ids=, resolution=)`: these "call back" items were resolved."""
    if hook not in _resolved_hooks:
        _resolved_hooks.append(hook)
    return hook


def callback_opened(*, item: FailedCall) -> None:
    for hook in _opened_hooks:
        hook(item=item)


def _callbacks_resolved(item_ids: list[int], resolution: str) -> None:
    if not item_ids:
        return
    for hook in _resolved_hooks:
        hook(item_ids=item_ids, resolution=resolution)


def failed_call_open(
    *,
    portal: Any,
    kind: str,
    dedupe_key: str,
    reason: str,
    phone_number: str = "",
    owner_user_id: int | None = None,
    call: Any = None,
    sync: Any = None,
    job: Job | None = None,
    crm_entity_type: str = "",
    crm_entity_id: int | None = None,
) -> FailedCall:
    """Open an item, or count another occurrence of the same open one. A "call back" item
    (kind missed) is then handed to the declared hooks (the dialer's callback)."""
    fields = {
        "kind": kind,
        "reason": reason[:4000],
        "phone_number": phone_number,
        "owner_user_id": owner_user_id,
        "call": call,
        "sync": sync,
        "job": job,
        "crm_entity_type": crm_entity_type,
        "crm_entity_id": crm_entity_id,
        "attempts": job.attempts if job else 0,
    }
    item, created = _item_open(portal=portal, dedupe_key=dedupe_key, fields=fields)
    if created:
        # A missed call is ordinary business (someone calls back), not something an operator
        # acts on.
        level = logging.INFO if kind == FailedCall.Kind.MISSED else logging.WARNING
        logger.log(
            level,
            "failed-call item opened: %s",
            reason,
            extra={"kind": kind, "item": item.pk, "portal": portal.member_id},
        )
    if item.kind == FailedCall.Kind.MISSED:
        callback_opened(item=item)
    return item


def _item_open(*, portal: Any, dedupe_key: str, fields: dict[str, Any]) -> tuple[FailedCall, bool]:
    """The open item for `dedupe_key` counted once more, or a new one; and whether it is new."""
    with transaction.atomic():
        existing = (
            FailedCall.objects.select_for_update()
            .filter(portal=portal, dedupe_key=dedupe_key, state__in=OPEN_STATES)
            .first()
        )
        if existing:
            for name, value in fields.items():
                if value not in (None, ""):
                    setattr(existing, name, value)
            existing.state = FailedCall.State.OPEN
            existing.occurrences = F("occurrences") + 1
            existing.save()
            existing.refresh_from_db()
            return existing, False
        try:
            with transaction.atomic():
                item = FailedCall.objects.create(portal=portal, dedupe_key=dedupe_key, **fields)
        except IntegrityError:  # opened concurrently: count it on theirs
            return _item_open(portal=portal, dedupe_key=dedupe_key, fields=fields)
    return item, True


def failed_call_report(
    *,
    row: CallSync,
    kind: str,
    dedupe_key: str,
    reason: str,
    job: Job,
    notice_kind: str,
    message: str,
    context: dict[str, Any],
    params: dict[str, Any] | None = None,
) -> FailedCall:
    """A call could not be placed or saved: open its item and tell the call's user.

    `params` adds to the notice's message parameters (integration/core/messages.py)."""
    item = failed_call_open(
        portal=row.portal,
        kind=kind,
        dedupe_key=dedupe_key,
        reason=reason,
        phone_number=row.phone_number,
        owner_user_id=row.user_id,
        call=row.call,
        sync=row,
        job=job,
        crm_entity_type=row.crm_entity_type,
        crm_entity_id=row.crm_entity_id,
    )
    alerts.notification_raise(
        portal=row.portal,
        kind=notice_kind,
        message=message,
        tag=f"{notice_kind}:{row.pk}",
        user_id=row.user_id,
        context={"sync_id": row.pk, **context},
        params={"phone": row.phone_number, **(params or {})},
    )
    return item


def failed_call_resolve(*, item: FailedCall, resolution: str, user_id: int | None = None) -> bool:
    """Close an item (a person handled it, or the pipeline saw it handled)."""
    updated = FailedCall.objects.filter(pk=item.pk, state__in=OPEN_STATES).update(
        state=FailedCall.State.RESOLVED,
        resolution=resolution[:255],
        resolved_by_user_id=user_id,
        resolved_at=timezone.now(),
        updated_at=timezone.now(),
    )
    if updated:
        failed_call_notices_close(items=[item])
        if item.kind == FailedCall.Kind.MISSED:
            _callbacks_resolved([item.pk], resolution)
    return bool(updated)


#: The notice each kind of item raised (failed_call_open's `notice_kind`, missed.py's tag).
NOTICE_KINDS = {
    FailedCall.Kind.DIAL_FAILED: "call.dial_failed",
    FailedCall.Kind.CRM_SYNC_FAILED: "call.crm_sync_failed",
}


def failed_call_notices_close(*, items: Any) -> None:
    """The items are handled: their banners and notices go with them (docs/pages.md)."""
    for item in items:
        if item.kind == FailedCall.Kind.MISSED:
            number = "".join(ch for ch in item.phone_number if ch in "0123456789")
            tag = f"call.missed:{number or item.phone_number}"
        elif item.sync_id and item.kind in NOTICE_KINDS:
            tag = f"{NOTICE_KINDS[item.kind]}:{item.sync_id}"
        else:
            continue
        alerts.notification_resolve(portal=item.portal, tag=tag)


def failed_call_retry(*, item: FailedCall) -> FailedCall:
    """Re-run the job behind the item now. Raises ValueError for items with nothing to re-run."""
    if item.state == FailedCall.State.RESOLVED:
        raise ValueError("this item is already resolved")
    if item.job is None:
        raise ValueError("nothing to retry for this item; call the number back instead")
    with transaction.atomic():
        if item.job.kind == "call.dial" and "dial_by" in (item.job.payload or {}):
            # "Try again" is a fresh click: a new deadline from now (issue 21 item 1).
            from integration.calls.dial import click_deadline

            payload = {**item.job.payload, **click_deadline()}
            Job.objects.filter(pk=item.job.pk).update(payload=payload)
            item.job.payload = payload
        jobs.job_retry_now(job=item.job)
        FailedCall.objects.filter(pk=item.pk).update(
            state=FailedCall.State.RETRYING, updated_at=timezone.now()
        )
    item.refresh_from_db()
    return item


def missed_calls_resolve_for_number(*, portal: Any, phone_number: str, resolution: str) -> int:
    """An answered outgoing call reached this number: its missed-call items are done."""
    items = FailedCall.objects.filter(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        phone_number=phone_number,
        state__in=OPEN_STATES,
    )
    found = list(items.select_related("portal"))
    failed_call_notices_close(items=found)
    count = FailedCall.objects.filter(pk__in=[i.pk for i in found], state__in=OPEN_STATES).update(
        state=FailedCall.State.RESOLVED,
        resolution=resolution[:255],
        resolved_at=timezone.now(),
        updated_at=timezone.now(),
    )
    _callbacks_resolved([i.pk for i in found], resolution)
    return count


def failed_call_follow_job(job: Job, state: str) -> None:
    """Items being retried follow their job: success resolves them, death reopens them."""
    items = FailedCall.objects.filter(job=job, state=FailedCall.State.RETRYING)
    if state == Job.State.SUCCEEDED:
        # An item names a job that failed an attempt, and its retry is a later attempt of the
        # same job (failed_call_retry): a first attempt has no item to follow it (issue 17).
        if job.attempts <= 1:
            return
        retried = list(items.select_related("portal"))
        if not retried:  # one read, no write
            return
        failed_call_notices_close(items=retried)
        items.update(
            state=FailedCall.State.RESOLVED,
            resolution="retried successfully",
            resolved_at=timezone.now(),
            updated_at=timezone.now(),
        )
    else:
        items.update(
            state=FailedCall.State.OPEN,
            reason=job.last_error[:4000],
            attempts=job.attempts,
            updated_at=timezone.now(),
        )


# --- selectors for the pages -----------------------------------------------------------------


def failed_call_list(
    *,
    portal: Any,
    kind: str | None = None,
    state: str | None = "open",
    user_id: int | None = None,
    reason: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[FailedCall]:
    """Items of one portal, newest first; `state="open"` means open or retrying."""
    items = FailedCall.objects.filter(portal=portal).select_related("call", "job")
    if kind:
        items = items.filter(kind=kind)
    if state == "open":
        items = items.filter(state__in=OPEN_STATES)
    elif state:
        items = items.filter(state=state)
    if user_id:
        items = items.filter(owner_user_id=user_id)
    if reason:
        items = items.filter(reason__icontains=reason)
    tz = timezone.get_current_timezone()
    if date_from:
        items = items.filter(created_at__gte=datetime.combine(date_from, time.min, tzinfo=tz))
    if date_to:
        items = items.filter(created_at__lte=datetime.combine(date_to, time.max, tzinfo=tz))
    return items.order_by("-created_at")


def failed_call_counts(*, portal: Any) -> dict[str, int]:
    """Open items per kind (all kinds present, zero when none)."""
    counts = {kind: 0 for kind in FailedCall.Kind.values}
    rows = (
        FailedCall.objects.filter(portal=portal, state__in=OPEN_STATES)
        .values("kind")
        .annotate(n=Count("id"))
    )
    counts.update({row["kind"]: row["n"] for row in rows})
    return counts
