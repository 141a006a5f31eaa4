"""The call history: every call of the portal, filtered, paged, and exported as CSV.

Calls are Unitalk's (`Call`, one row per Unitalk call) with their Bitrix24 side (`CallSync`) when
there is one; a click Unitalk never placed is on the Failed calls list instead (docs/pages.md
"Call history"). Every read takes the portal from the page token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from bitrixapp.models import Portal
from integration.bitrix import users as bitrix_users
from integration.calls.models import Call, CallSync
from integration.core import inputs
from integration.unitalk.models import OperatorMapping

DIRECTIONS = ("in", "out")
OUTCOMES = ("answered", "missed", "failed", "live")
NUMBER_RE = re.compile(r"^[0-9+()\-\s]{1,32}$")


@dataclass(frozen=True)
class HistoryFilters:
    date_from: date | None = None
    date_to: date | None = None
    user_id: int | None = None
    direction: str = ""
    outcome: str = ""
    number: str = ""


class HistoryFiltersInvalid(Exception):
    """Filters that cannot mean anything; `errors` has a message per field (shown under it)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def date_range_parse(query: Any, errors: dict[str, str]) -> tuple[date | None, date | None]:
    """`date_from`, `date_to` of a list's filters; a wrong one gets its message in `errors`
    (call under the reader's language). Shared by every list page."""

    def day(name: str) -> date | None:
        raw = str(query.get(name) or "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            errors[name] = _("Enter a date like 2025-01-31.")
            return None

    date_from, date_to = day("date_from"), day("date_to")
    if date_from and date_to and date_from > date_to:
        errors["date_to"] = _("“To” must not be earlier than “From”.")
    return date_from, date_to


def picked_user_parse(query: Any, errors: dict[str, str]) -> int | None:
    """The `user` a list is filtered by (the picker sends a Bitrix24 user id)."""
    raw = str(query.get("user") or "").strip()
    # The one integer parser (docs/security.md "Numbers and JSON from outside"): str.isdigit()
    # also takes "¹²", which int() refuses.
    try:
        return inputs.parse_int_or_none(raw, field="user", minimum=1)
    except inputs.InputError:
        errors["user"] = _("Choose a user with the picker.")
        return None


def history_filters_parse(query: Any) -> HistoryFilters:
    """Filters from a query dict (call under the reader's language). Raises
    HistoryFiltersInvalid: a wrong value is said, never silently dropped."""
    errors: dict[str, str] = {}
    date_from, date_to = date_range_parse(query, errors)
    user_id = picked_user_parse(query, errors)
    direction = str(query.get("direction") or "").strip()
    if direction and direction not in DIRECTIONS:
        errors["direction"] = _("Choose incoming or outgoing.")
    outcome = str(query.get("outcome") or "").strip()
    if outcome and outcome not in OUTCOMES:
        errors["outcome"] = _("Choose an outcome from the list.")
    number = str(query.get("number") or "").strip()
    if number and not NUMBER_RE.match(number):
        errors["number"] = _("Enter digits of the phone number (part of it is enough).")
    if errors:
        raise HistoryFiltersInvalid(errors)
    return HistoryFilters(
        date_from=date_from,
        date_to=date_to,
        user_id=user_id,
        direction=direction,
        outcome=outcome,
        number=re.sub(r"\D", "", number),
    )


def _bounds(day: date, *, end: bool) -> datetime:
    moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    return timezone.make_aware(moment, timezone.get_current_timezone())


#: An ended call nobody answered (answered_at stays empty; Unitalk's state says why).
_UNANSWERED = Q(ended=True, answered_at__isnull=True) & ~Q(state="ANSWER")
OUTCOME_Q = {
    "answered": Q(answered_at__isnull=False) | Q(state="ANSWER"),
    "missed": _UNANSWERED & Q(direction__in=[Call.Direction.IN, Call.Direction.MISSED]),
    "failed": _UNANSWERED & ~Q(direction__in=[Call.Direction.IN, Call.Direction.MISSED]),
    "live": Q(ended=False),
}


def history_calls(*, portal: Portal, filters: HistoryFilters) -> QuerySet[Call]:
    """This portal's calls matching `filters`, newest first (index call_portal_started)."""
    calls = Call.objects.filter(portal=portal).select_related("sync")
    if filters.date_from:
        calls = calls.filter(started_at__gte=_bounds(filters.date_from, end=False))
    if filters.date_to:
        calls = calls.filter(started_at__lt=_bounds(filters.date_to, end=True))
    if filters.direction == "in":
        calls = calls.filter(direction__in=[Call.Direction.IN, Call.Direction.MISSED])
    elif filters.direction == "out":
        calls = calls.filter(direction=Call.Direction.OUT)
    if filters.outcome:
        calls = calls.filter(OUTCOME_Q[filters.outcome])
    if filters.number:
        calls = calls.filter(client_number__contains=filters.number)
    if filters.user_id:
        lines = OperatorMapping.objects.filter(
            portal=portal, bitrix_user_id=filters.user_id
        ).values_list("line", flat=True)
        calls = calls.filter(Q(sync__user_id=filters.user_id) | Q(operator_line__in=list(lines)))
    return calls.order_by("-started_at", "-pk")


def call_outcome(call: Call) -> str:
    if not call.ended:
        return "live"
    if call.answered_at is not None or call.state == "ANSWER":
        return "answered"
    return "missed" if call.direction in (Call.Direction.IN, Call.Direction.MISSED) else "failed"


class _Rows:
    """Turns calls into rows with names, reading the line mappings and people once."""

    def __init__(self, portal: Portal) -> None:
        self.owners = dict(
            OperatorMapping.objects.filter(portal=portal).values_list("line", "bitrix_user_id")
        )
        self.people = bitrix_users.people_get(portal=portal)

    def row(self, call: Call) -> dict[str, Any]:
        sync: CallSync | None = getattr(call, "sync", None)
        user_id = (sync.user_id if sync else None) or self.owners.get(call.operator_line)
        started = call.started_at or call.created_at
        return {
            "id": call.pk,
            "when": timezone.localtime(started).strftime("%Y-%m-%d %H:%M"),
            "started_at": started.isoformat(),
            "direction": "in" if call.direction in ("in", "missed") else call.direction,
            "outcome": call_outcome(call),
            "state": call.state,
            "number": call.client_number,
            "line": call.operator_line,
            "user": bitrix_users.person_dict(self.people, user_id),
            "talk_seconds": call.talk_seconds,
            "recording": (sync.record_url if sync else "") or call.recording_url,
            "stage": sync.stage if sync else "",
            "error": (sync.last_error or sync.failed_reason) if sync else "",
            "crm": (
                {"type": sync.crm_entity_type, "id": sync.crm_entity_id}
                if sync and sync.crm_entity_type and sync.crm_entity_id
                else None
            ),
        }


def history_page_get(*, portal: Portal, filters: HistoryFilters, page: int) -> dict[str, Any]:
    paginator = Paginator(
        history_calls(portal=portal, filters=filters), settings.PAGES_HISTORY_PER_PAGE
    )
    current = paginator.get_page(page)
    rows = _Rows(portal)
    return {
        "calls": [rows.row(c) for c in current.object_list],
        "page": current.number,
        "pages": paginator.num_pages,
        "total": paginator.count,
    }


CSV_HEADER = (
    "started_at",
    "direction",
    "outcome",
    "unitalk_state",
    "number",
    "line",
    "user_id",
    "user_name",
    "talk_seconds",
    "crm_entity",
    "bitrix_sync",
    "recording_url",
)


def history_csv_rows(*, portal: Portal, filters: HistoryFilters) -> Iterator[list[Any]]:
    """The header, then one row per call, read in chunks (the export streams: memory stays
    flat whatever the number of calls)."""
    yield list(CSV_HEADER)
    rows = _Rows(portal)
    for call in history_calls(portal=portal, filters=filters).iterator(chunk_size=500):
        r = rows.row(call)
        yield [
            r["started_at"],
            r["direction"],
            r["outcome"],
            r["state"],
            r["number"],
            r["line"],
            r["user"]["id"] or "",
            r["user"]["name"] if r["user"]["known"] else "",
            "" if r["talk_seconds"] is None else r["talk_seconds"],
            f"{r['crm']['type']}:{r['crm']['id']}" if r["crm"] else "",
            r["stage"],
            r["recording"],
        ]
