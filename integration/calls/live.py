"""Calls as they happen: the overview's "Calls now" and the call card's live stage.

Pages poll these reads (docs/pages.md "Live calls"): a short GET every second, no connection held
open, so no web worker is tied to an open page. The read is one indexed range scan
(`call_portal_started`: portal, started_at within PAGES_LIVE_WINDOW_S) plus the mappings of the
lines it found; a call whose CALL_END was lost stops showing when it leaves the window (and
reconciliation ends it, docs/pipeline.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from bitrixapp.models import Portal
from integration.bitrix import users as bitrix_users
from integration.calls.models import Call, CallSync
from integration.unitalk.models import OperatorMapping

LIVE_MAX = 50


def _line_users(portal: Portal, lines: set[str]) -> dict[str, int]:
    if not lines:
        return {}
    return dict(
        OperatorMapping.objects.filter(portal=portal, line__in=lines).values_list(
            "line", "bitrix_user_id"
        )
    )


def calls_live(*, portal: Portal) -> list[dict[str, Any]]:
    """The portal's calls in progress (ringing or talking), oldest first, at most LIVE_MAX."""
    now = timezone.now()
    since = now - timedelta(seconds=settings.PAGES_LIVE_WINDOW_S)
    calls = list(
        Call.objects.filter(portal=portal, started_at__gte=since, ended=False)
        .select_related("sync")
        .order_by("started_at")[:LIVE_MAX]
    )
    owners = _line_users(portal, {c.operator_line for c in calls if c.operator_line})
    people = bitrix_users.people_get(portal=portal)
    rows = []
    for call in calls:
        sync: CallSync | None = getattr(call, "sync", None)
        user_id = (sync.user_id if sync else None) or owners.get(call.operator_line)
        talking = call.status == Call.Status.ANSWERED
        since_at = (call.answered_at if talking else None) or call.started_at or now
        elapsed = max(int((now - since_at).total_seconds()), 0)
        rows.append(
            {
                "id": call.pk,
                "state": "talking" if talking else "ringing",
                "direction": call.direction,
                "line": call.operator_line,
                "number": call.client_number,
                "user": bitrix_users.person_dict(people, user_id),
                "crm": (
                    {"type": sync.crm_entity_type, "id": sync.crm_entity_id}
                    if sync and sync.crm_entity_type and sync.crm_entity_id
                    else None
                ),
                "started_at": call.started_at.isoformat() if call.started_at else "",
                "elapsed": elapsed,
                "elapsed_text": elapsed_text(elapsed),
            }
        )
    return rows


def elapsed_text(seconds: int) -> str:
    """1:05, 12:40, 1:02:03: how long a call has been ringing or talking."""
    minutes, sec = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


#: The steps the call card shows, in order (docs/pages.md "Call card").
STEPS = ("dialing", "ringing", "talking", "saved")


def call_live_stage(*, sync: CallSync, dial_state: str | None) -> dict[str, Any]:
    """Where one call stands: how many STEPS it reached, the current one ("ended" between the
    hang-up and the save), whether the recording is attached, and the problem to show."""
    call = sync.call
    saved = sync.stage in (CallSync.Stage.FINISHED, CallSync.Stage.RECORDED)
    answered = call is not None and (
        call.answered_at is not None or call.status == Call.Status.ANSWERED
    )
    failed = sync.stage == CallSync.Stage.FAILED or dial_state == "failed"
    # A failed call stops at the step it could not pass: a click Unitalk never placed fails at
    # "dialing", even though its Bitrix24 call is closed (finished with the failure's code).
    reached = 1 + (call is not None) + answered + (saved and not failed)
    if failed:
        step = "problem"
    elif saved:
        step = "saved"
    elif call is not None and call.ended:
        step = "ended"
    else:
        step = STEPS[reached - 1]
    return {
        "step": step,
        "reached": reached,
        "steps": list(STEPS),
        "recorded": sync.stage == CallSync.Stage.RECORDED,
        "problem": _problem(sync, dial_state),
    }


def _problem(sync: CallSync, dial_state: str | None) -> str:
    """The problem line under the steps. A click's own dial says its state itself (progress,
    the failure with "Try again"), so it is not said twice; once a retried dial went through,
    the first attempt's failure is history and only a later sync problem is shown."""
    if dial_state in ("dialing", "retrying", "failed"):
        return ""
    if dial_state == "dialled":
        return sync.last_error
    return sync.last_error or sync.failed_reason
