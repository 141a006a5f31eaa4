"""Reads for the app pages: overview, settings, connection health, lists, CRM tab, call card.

Everything here takes the portal from the signed page token, so a page can only ever read its
own portal's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bitrixapp.models import Portal, portal_options
from integration.bitrix import users as bitrix_users
from integration.calls import failed, history, live
from integration.calls.models import CallSync, FailedCall
from integration.campaigns.models import CampaignItem
from integration.campaigns.reasons import reason_label
from integration.core import messages, progress
from integration.models import Job, Notification


def banners_list(*, portal: Portal, user_id: int, is_admin: bool) -> list[Notification]:
    """Open problems this person can act on: their own, and the portal-wide ones for admins.

    One row per cause already (a tag has at most one open row); an ordinary user is not shown
    an admin's problem they can do nothing about.
    """
    audience = Q(audience=Notification.Audience.USER, user_id=user_id)
    if is_admin:
        audience |= Q(audience=Notification.Audience.ADMINS)
    return list(
        Notification.objects.filter(portal=portal, resolved_at__isnull=True)
        .filter(audience)
        .order_by("-updated_at")[:20]
    )


def banner_dict(row: Notification) -> dict[str, Any]:
    """A banner in the active language: title, what to do, repeats; the detail for the toggle."""
    shown = messages.notification_render(row)
    return {
        "id": row.pk,
        "kind": row.kind,
        "severity": row.severity,
        "title": shown.title,
        "message": shown.text,
        "detail": row.message if row.message != shown.text else "",
        "repeats": messages.repeat_text(row.count),
        "count": row.count,
        "since": row.created_at.isoformat(),
        "fix": shown.fix,
    }


def overview_get(*, portal: Portal, user_id: int, is_admin: bool) -> dict[str, Any]:
    """Counts and banners (already rendered: call under the reader's language)."""
    return {
        "counts": failed.failed_call_counts(portal=portal),
        "banners": [
            banner_dict(b) for b in banners_list(portal=portal, user_id=user_id, is_admin=is_admin)
        ],
        "portal_status": portal.status,
    }


def setup_steps(*, portal: Portal) -> list[str]:
    """What a fresh install has not configured yet, in order (the overview lists them)."""
    from integration.unitalk.models import OperatorMapping, UnitalkConnection

    connection = UnitalkConnection.objects.filter(portal=portal).first()
    steps = []
    if connection is None or not connection.api_key:
        steps.append("key")
    elif connection.last_webhook_at is None:
        steps.append("webhook")
    if not OperatorMapping.objects.filter(portal=portal).exists():
        steps.append("lines")
    return steps


def settings_get(*, portal: Portal) -> dict[str, Any]:
    """Options, and the Unitalk connection as the admin may see it (integration/unitalk)."""
    from integration.unitalk import selectors as unitalk_selectors

    return {"options": portal_options(portal)} | unitalk_selectors.connection_settings_get(
        portal=portal
    )


@dataclass(frozen=True)
class FailedFilters:
    kind: str = ""
    state: str = "open"
    user_id: int | None = None
    reason: str = ""
    date_from: date | None = None
    date_to: date | None = None


class FiltersInvalid(Exception):
    """Filters a person typed that cannot mean anything; `errors` has a message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def failed_filters_parse(query: Any) -> FailedFilters:
    """Filters from a query dict (call under the reader's language).

    Raises FiltersInvalid for a user id that is not a number, a date that is not a date, or
    From after To: ignoring them would answer "nothing here", which would not be true.
    """
    errors: dict[str, str] = {}
    kind = query.get("kind") or ""
    state = query.get("state") or "open"
    user_id = history.picked_user_parse(query, errors)
    date_from, date_to = history.date_range_parse(query, errors)
    if errors:
        raise FiltersInvalid(errors)
    return FailedFilters(
        kind=kind if kind in FailedCall.Kind.values else "",
        state=state if state in ("open", *FailedCall.State.values) else "open",
        user_id=user_id,
        reason=str(query.get("reason") or "")[:200],
        date_from=date_from,
        date_to=date_to,
    )


def failed_reason_text(kind: str) -> str:
    """What happened, in people's words; the stored reason is the technical detail."""
    texts: dict[str, str] = {
        FailedCall.Kind.MISSED: _("Nobody answered. Call the customer back."),
        FailedCall.Kind.DIAL_FAILED: _("The call could not be placed through Unitalk."),
        FailedCall.Kind.CRM_SYNC_FAILED: _("The call could not be saved in the Bitrix24 CRM."),
    }
    return texts.get(kind, _("Something went wrong with this call."))


def failed_item_dict(
    item: FailedCall, people: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An item as the list shows it (call under the reader's language); `people` names the
    owner and who resolved it (integration/bitrix/users.py; by id while not loaded)."""
    return {
        "owner_person": bitrix_users.person_dict(people, item.owner_user_id),
        "resolved_by_person": bitrix_users.person_dict(people, item.resolved_by_user_id),
        "id": item.pk,
        "kind": item.kind,
        "state": item.state,
        "phone": item.phone_number,
        "owner": item.owner_user_id,
        "reason": failed_reason_text(item.kind),
        "detail": item.reason,
        "attempts": item.attempts,
        "attempts_text": (
            ngettext("%(n)d attempt", "%(n)d attempts", item.attempts) % {"n": item.attempts}
            if item.attempts
            else ""
        ),
        "occurrences": item.occurrences,
        "occurrences_text": messages.repeat_text(item.occurrences),
        "created_at": item.created_at.isoformat(),
        "retryable": item.job_id is not None and item.state != FailedCall.State.RESOLVED,
        "resolution": item.resolution,
        "resolved_by": item.resolved_by_user_id,
        "resolved_at": item.resolved_at.isoformat() if item.resolved_at else "",
        "crm": (
            {"type": item.crm_entity_type, "id": item.crm_entity_id}
            if item.crm_entity_type and item.crm_entity_id
            else None
        ),
        "dialer": _dialer_text(item),
    }


def _dialer_text(item: FailedCall) -> str:
    """Where a callback stands in the autodialer (docs/routing.md "Callbacks in the dialer"),
    "" when it has no dialer item (its owner dials no campaign)."""
    if item.kind != FailedCall.Kind.MISSED:
        return ""
    try:
        dialer = item.dialer_item
    except CampaignItem.DoesNotExist:
        return ""
    state = dialer.state
    if state == CampaignItem.State.PENDING:
        return _("In the autodialer: offered to its owner before any campaign number")
    if state == CampaignItem.State.CALLING:
        return _("The autodialer is calling back now")
    if state == CampaignItem.State.DONE:
        return _("Called back by the autodialer")
    if state == CampaignItem.State.FAILED:
        return _("The autodialer called once, not reached: call back yourself")
    return _("Not in the autodialer: %(reason)s") % {"reason": reason_label(dialer.reason)}


def failed_page_get(*, portal: Portal, filters: FailedFilters, page: int = 1) -> dict[str, Any]:
    items = failed.failed_call_list(
        portal=portal,
        kind=filters.kind or None,
        state=filters.state,
        user_id=filters.user_id,
        reason=filters.reason,
        date_from=filters.date_from,
        date_to=filters.date_to,
    ).select_related("dialer_item")
    if filters.kind == FailedCall.Kind.MISSED and filters.state == "open":
        # Callbacks to make, in the dialer's order (docs/routing.md "Callbacks in the dialer"):
        # the ones the dialer offers first, then the longest waiting (nearest escalation).
        queued = (CampaignItem.State.PENDING, CampaignItem.State.CALLING)
        offered = Case(
            When(dialer_item__state__in=queued, then=F("dialer_item__priority")),
            default=Value(0),
        )
        items = items.order_by(offered.desc(), "created_at", "pk")
    paginator = Paginator(items, settings.PAGES_FAILED_CALLS_PER_PAGE)
    current = paginator.get_page(page)
    people = bitrix_users.people_get(portal=portal)
    return {
        "items": [failed_item_dict(i, people) for i in current.object_list],
        "page": current.number,
        "pages": paginator.num_pages,
        "total": paginator.count,
    }


def failed_item_get(*, portal: Portal, item_id: int) -> FailedCall | None:
    """One item of this portal (None for another portal's id: pages cannot reach across)."""
    return FailedCall.objects.filter(portal=portal, pk=item_id).select_related("job").first()


def call_status_label(code: str) -> str:
    """Unitalk's end `state` (docs/unitalk.md §3.5) or our own progress, as people say it."""
    labels = {
        "ANSWER": _("Answered"),
        "NOANSWER": _("Not answered"),
        "BUSY": _("Busy"),
        "ANSW_RJCT": _("Rejected"),
        "ANSW_NF_OP": _("No free operator"),
        "ANSW_OP_NA": _("The operator did not pick up"),
        "UNREACHABLE": _("Unreachable"),
        "ANSWERING_MACHINE": _("Answering machine"),
        "FAIL": _("Failed"),
        "ringing": _("Ringing"),
        "answered": _("In conversation"),
        "ended": _("Ended"),
    }
    return str(labels.get(code, code or "—"))


def _ring_seconds(call: Any) -> int | None:
    if call is None:
        return None
    if call.started_at and call.answered_at:
        return max(int((call.answered_at - call.started_at).total_seconds()), 0)
    if call.full_seconds is not None and call.talk_seconds is not None:
        return max(call.full_seconds - call.talk_seconds, 0)
    return None


def sync_dict(sync: CallSync) -> dict[str, Any]:
    call = sync.call
    started = (call.started_at if call else None) or sync.created_at
    status = (call.state or call.status) if call else ""
    return {
        "status_label": call_status_label(status) if status else "—",
        "ring_seconds": _ring_seconds(call),
        "line": (call.operator_line if call else "") or sync.line_number,
        "id": sync.pk,
        "bitrix_call_id": sync.bitrix_call_id or "",
        "stage": sync.stage,
        "origin": sync.origin,
        "phone": sync.phone_number or (call.client_number if call else ""),
        "user": sync.user_id,
        "direction": call.direction if call else "",
        "status": call.state or call.status if call else "",
        "duration": call.talk_seconds if call and call.talk_seconds is not None else None,
        "started_at": started.isoformat(),
        "when": timezone.localtime(started).strftime("%Y-%m-%d %H:%M"),
        "record_url": sync.record_url or (call.recording_url if call else ""),
        "recorded": sync.record_file_id is not None,
        "status_code": sync.status_code,
        "error": sync.last_error or sync.failed_reason,
        "updated_at": sync.updated_at.isoformat(),
    }


CRM_TYPES = {"LEAD", "DEAL", "CONTACT", "COMPANY"}


def crm_calls_list(*, portal: Portal, entity_type: str, entity_id: int) -> list[dict[str, Any]]:
    """This CRM entity's calls, newest first (at most 100)."""
    if entity_type not in CRM_TYPES or entity_id <= 0:
        return []
    syncs = (
        CallSync.objects.filter(portal=portal, crm_entity_type=entity_type, crm_entity_id=entity_id)
        .select_related("call")
        .order_by("-created_at")[:100]
    )
    rows = [sync_dict(s) for s in syncs]
    # How often each number has called this portal: a repeat caller is worth knowing about.
    numbers = {r["phone"] for r in rows if r["phone"]}
    seen = dict(
        CallSync.objects.filter(portal=portal, phone_number__in=numbers)
        .values_list("phone_number")
        .annotate(n=Count("id"))
    )
    resolved = {
        f.sync_id: f
        for f in FailedCall.objects.filter(
            portal=portal, sync_id__in=[r["id"] for r in rows], state=FailedCall.State.RESOLVED
        )
    }
    for r in rows:
        r["calls_from_number"] = seen.get(r["phone"], 0)
        item = resolved.get(r["id"])
        r["resolved_by"] = item.resolved_by_user_id if item else None
        r["resolved_when"] = (
            timezone.localtime(item.resolved_at).strftime("%Y-%m-%d %H:%M")
            if item and item.resolved_at
            else ""
        )
    return rows


def call_card_get(*, portal: Portal, bitrix_call_id: str) -> dict[str, Any] | None:
    sync = (
        CallSync.objects.filter(portal=portal, bitrix_call_id=bitrix_call_id)
        .select_related("call")
        .first()
    )
    if sync is None:
        return None
    data = sync_dict(sync)
    data["failed"] = [
        failed_item_dict(i)
        for i in FailedCall.objects.filter(portal=portal, sync=sync).order_by("-created_at")[:5]
    ]
    data["dial"] = call_dial_progress(sync=sync)
    done = (CallSync.Stage.FINISHED, CallSync.Stage.RECORDED)
    if sync.call_id is None and sync.failed_reason and sync.stage in done:
        # A click Unitalk never placed is closed in Bitrix24 with the failure's code: true, but
        # "saved" reads as a call that happened (pages.stage_labels). A "Try again" that went
        # through is logged as a call of its own (calls/dial.py), so this one stays not placed.
        data["stage"] = "not_placed"
    data["live"] = live.call_live_stage(
        sync=sync, dial_state=data["dial"]["state"] if data["dial"] else None
    )
    return data


_DIAL_STATES: dict[str, str] = {
    Job.State.PENDING: "dialing",
    Job.State.RUNNING: "dialing",
    Job.State.RETRYING: "retrying",
    Job.State.SUCCEEDED: "dialled",
    Job.State.DEAD: "failed",
    Job.State.PAUSED: "failed",
    Job.State.CANCELLED: "failed",
}


def call_dial_progress(*, sync: CallSync) -> dict[str, Any] | None:
    """A click's dial as the call card's tab shows it (issue 21 item 1): attempts and seconds
    left while Unitalk is retried, the reason and the item to "Try again" once it failed."""
    job = Job.objects.filter(idempotency_key=f"call.dial:{sync.pk}").first()
    if job is None:
        return None
    state = _DIAL_STATES.get(job.state, "dialing")
    dial_by = (job.payload or {}).get("dial_by")
    left = None
    if dial_by is not None and state in ("dialing", "retrying"):
        left = max(0, round(float(dial_by) - timezone.now().timestamp()))
    item = (
        FailedCall.objects.filter(
            sync=sync, kind=FailedCall.Kind.DIAL_FAILED, state__in=failed.OPEN_STATES
        )
        .order_by("-pk")
        .first()
    )
    return {
        "state": state,
        "attempts": job.attempts,
        "seconds_left": left,
        "reason": item.reason if item and state == "failed" else "",
        "retry_item": item.pk if item and state == "failed" else None,
    }


def job_status_get(*, portal: Portal, job_id: int) -> dict[str, Any] | None:
    """A job of this portal as the page shows it (settings buttons poll it)."""
    job = Job.objects.filter(portal=portal, pk=job_id).first()
    if job is None:
        return None
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "done": job.state not in Job.OPEN_STATES,
        "result": job.result if isinstance(job.result, dict) else {},
        "error": job.last_error,
        # done / total of a long job that reports it (core/progress.py); None otherwise
        "progress": progress.progress_get(kind=job.kind, portal_id=portal.pk)
        if job.state in Job.OPEN_STATES
        else None,
    }
