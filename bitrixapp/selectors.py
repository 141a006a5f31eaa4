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
from django.db.models import Q
from django.utils import timezone

from bitrixapp.models import Portal, portal_options
from integration.calls import failed
from integration.calls.models import CallSync, FailedCall
from integration.core import inputs
from integration.models import Job, Notification

#: Notification kinds the pages show as banners, with the page that fixes them.
BANNER_FIX = {
    "unitalk.credentials_invalid": "settings",
    "unitalk.unmapped_lines": "settings",
    "bitrix.auth": "",
    "bitrix.install": "",
    "jobs.dead": "failed",
}


def page_lang(raw: str | None, *, fallback: str = "en") -> str:
    """Our language for Bitrix24's LANG (`ua` is Bitrix24's code for Ukrainian)."""
    code = (raw or "").strip().lower()[:8]
    code = {"ua": "uk"}.get(code, code)
    supported = {c for c, _ in settings.LANGUAGES}
    if code in supported:
        return code
    return fallback if fallback in supported else "en"


def banners_list(*, portal: Portal, user_id: int) -> list[Notification]:
    """Open problems to show: the portal-wide ones and this user's own."""
    return list(
        Notification.objects.filter(portal=portal, resolved_at__isnull=True)
        .filter(Q(audience=Notification.Audience.ADMINS) | Q(user_id=user_id))
        .order_by("-updated_at")[:20]
    )


def banner_dict(row: Notification) -> dict[str, Any]:
    return {
        "id": row.pk,
        "kind": row.kind,
        "severity": row.severity,
        "message": row.message,
        "count": row.count,
        "since": row.created_at.isoformat(),
        "fix": BANNER_FIX.get(row.kind, ""),
    }


def overview_get(*, portal: Portal, user_id: int) -> dict[str, Any]:
    return {
        "counts": failed.failed_call_counts(portal=portal),
        "banners": [banner_dict(b) for b in banners_list(portal=portal, user_id=user_id)],
        "portal_status": portal.status,
    }


def health_get(*, portal: Portal) -> dict[str, Any]:
    """What the settings page shows under "Connection health"."""
    from integration.unitalk.models import UnitalkConnection

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
        "unitalk_reason": connection.status_reason if connection else "",
        "unitalk_key": connection.api_key_masked if connection else "",
        "last_webhook_at": connection.last_webhook_at if connection else None,
        "backlog": Job.objects.filter(portal=portal, state__in=Job.OPEN_STATES).count(),
        "paused": Job.objects.filter(portal=portal, state=Job.State.PAUSED).count(),
        "dead": Job.objects.filter(portal=portal, state=Job.State.DEAD).count(),
    }


def settings_get(*, portal: Portal) -> dict[str, Any]:
    """Options, the Unitalk connection as the admin may see it (key: last 4 only), mappings."""
    from integration.unitalk import services as unitalk_services
    from integration.unitalk.models import OperatorMapping, UnitalkConnection

    connection = UnitalkConnection.objects.filter(portal=portal).first()
    return {
        "options": portal_options(portal),
        "connection": connection,
        "key_masked": connection.api_key_masked if connection else "",
        "webhook_url": (
            unitalk_services.connection_webhook_url(connection=connection) if connection else ""
        ),
        "webhook_secret": connection.webhook_secret if connection else "",
        "webhook_header": settings.UNITALK_WEBHOOK_SECRET_HEADER,
        "mappings": list(
            OperatorMapping.objects.filter(portal=portal).order_by("line", "bitrix_user_id")
        ),
    }


@dataclass(frozen=True)
class FailedFilters:
    kind: str = ""
    state: str = "open"
    user_id: int | None = None
    reason: str = ""
    date_from: date | None = None
    date_to: date | None = None


def failed_filters_parse(query: Any) -> FailedFilters:
    """Filters from a query dict. Dates that do not parse are ignored; a `user` that is not a
    user id raises InputError (a 400 naming the field)."""

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(query.get(name) or "")
        except ValueError:
            return None

    kind = query.get("kind") or ""
    state = query.get("state") or "open"
    return FailedFilters(
        kind=kind if kind in FailedCall.Kind.values else "",
        state=state if state in ("open", *FailedCall.State.values) else "open",
        user_id=inputs.parse_int_or_none(query.get("user"), field="user", minimum=1),
        reason=str(query.get("reason") or "")[:200],
        date_from=day("date_from"),
        date_to=day("date_to"),
    )


def failed_item_dict(item: FailedCall) -> dict[str, Any]:
    return {
        "id": item.pk,
        "kind": item.kind,
        "state": item.state,
        "phone": item.phone_number,
        "owner": item.owner_user_id,
        "reason": item.reason,
        "attempts": item.attempts,
        "occurrences": item.occurrences,
        "created_at": item.created_at.isoformat(),
        "retryable": item.job_id is not None and item.state != FailedCall.State.RESOLVED,
        "resolution": item.resolution,
        "crm": (
            {"type": item.crm_entity_type, "id": item.crm_entity_id}
            if item.crm_entity_type and item.crm_entity_id
            else None
        ),
    }


def failed_page_get(*, portal: Portal, filters: FailedFilters, page: int = 1) -> dict[str, Any]:
    items = failed.failed_call_list(
        portal=portal,
        kind=filters.kind or None,
        state=filters.state,
        user_id=filters.user_id,
        reason=filters.reason,
        date_from=filters.date_from,
        date_to=filters.date_to,
    )
    paginator = Paginator(items, settings.PAGES_FAILED_CALLS_PER_PAGE)
    current = paginator.get_page(page)
    return {
        "items": [failed_item_dict(i) for i in current.object_list],
        "page": current.number,
        "pages": paginator.num_pages,
        "total": paginator.count,
    }


def failed_item_get(*, portal: Portal, item_id: int) -> FailedCall | None:
    """One item of this portal (None for another portal's id: pages cannot reach across)."""
    return FailedCall.objects.filter(portal=portal, pk=item_id).select_related("job").first()


def sync_dict(sync: CallSync) -> dict[str, Any]:
    call = sync.call
    started = (call.started_at if call else None) or sync.created_at
    return {
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
    return [sync_dict(s) for s in syncs]


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
    }
