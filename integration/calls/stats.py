"""How calls go, for the overview's charts (docs/pages.md "Charts"): the last N days of one portal.

Every read is a range over `call_portal_started` (portal, started_at); outcomes are the history's
(history.OUTCOME_Q), so a chart and the history filtered the same way count the same calls.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from bitrixapp.models import Portal
from integration.bitrix import users as bitrix_users
from integration.calls.history import OUTCOME_Q
from integration.calls.models import Call
from integration.unitalk.models import OperatorMapping

DAYS = 30
#: A call counts as saved in time when Bitrix24 had it within this long of its end.
SYNC_IN_TIME_S = 60
#: Missed calls looked at for the callback median (the newest ones).
CALLBACK_SAMPLE = 5000


def _since(days: int) -> Any:
    start = timezone.localdate() - timedelta(days=days - 1)
    return timezone.make_aware(datetime.combine(start, time.min), timezone.get_current_timezone())


def calls_per_day(*, portal: Portal, days: int = DAYS) -> list[dict[str, Any]]:
    """[{day, answered, missed, failed}] for each of the last `days` days, oldest first."""
    rows = (
        Call.objects.filter(portal=portal, started_at__gte=_since(days), ended=True)
        .annotate(day=TruncDate("started_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            answered=Count("id", filter=OUTCOME_Q["answered"]),
            missed=Count("id", filter=OUTCOME_Q["missed"]),
            failed=Count("id", filter=OUTCOME_Q["failed"]),
        )
    )
    by_day = {r["day"]: r for r in rows}
    first = timezone.localdate() - timedelta(days=days - 1)
    out = []
    for n in range(days):
        day: date = first + timedelta(days=n)
        r = by_day.get(day, {})
        out.append(
            {
                "day": day,
                "answered": r.get("answered", 0),
                "missed": r.get("missed", 0),
                "failed": r.get("failed", 0),
            }
        )
    return out


def callback_median(*, portal: Portal, days: int = DAYS) -> dict[str, Any]:
    """Median seconds from a missed call to the first outgoing call to that number after it;
    `called_back` of `missed` calls were called back at all."""
    since = _since(days)
    missed = list(
        Call.objects.filter(portal=portal, started_at__gte=since)
        .filter(OUTCOME_Q["missed"])
        .exclude(client_number="")
        .order_by("-started_at")
        .values_list("client_number", "started_at")[:CALLBACK_SAMPLE]
    )
    numbers = {n for n, _ in missed}
    outgoing: dict[str, list[Any]] = defaultdict(list)
    for number, started in (
        Call.objects.filter(
            portal=portal,
            started_at__gte=since,
            direction=Call.Direction.OUT,
            client_number__in=numbers,
        )
        .order_by("started_at")
        .values_list("client_number", "started_at")
    ):
        outgoing[number].append(started)
    waits = []
    for number, started in missed:
        later = outgoing.get(number, [])
        i = bisect.bisect_right(later, started)
        if i < len(later):
            waits.append((later[i] - started).total_seconds())
    return {
        "missed": len(missed),
        "called_back": len(waits),
        "median_s": int(statistics.median(waits)) if waits else None,
    }


def sync_health(*, portal: Portal, days: int = DAYS) -> dict[str, Any]:
    """Of the calls that ended (and Bitrix24 was to be told), how many were saved within
    SYNC_IN_TIME_S of their end."""
    ended = Call.objects.filter(
        portal=portal, started_at__gte=_since(days), ended=True, sync__isnull=False
    )
    counts = ended.aggregate(
        total=Count("id"),
        in_time=Count(
            "id",
            filter=Q(
                sync__finished_at__isnull=False,
                sync__finished_at__lte=F("ended_at") + timedelta(seconds=SYNC_IN_TIME_S),
            ),
        ),
        saved=Count("id", filter=Q(sync__finished_at__isnull=False)),
    )
    total = counts["total"]
    return counts | {"share": (counts["in_time"] / total) if total else None}


def per_user(*, portal: Portal, days: int = DAYS) -> list[dict[str, Any]]:
    """Answered and missed inbound calls per employee (by the call's user, else its line's)."""
    owners = dict(
        OperatorMapping.objects.filter(portal=portal).values_list("line", "bitrix_user_id")
    )
    rows = (
        Call.objects.filter(portal=portal, started_at__gte=_since(days), ended=True)
        .values("operator_line", "sync__user_id")
        .annotate(
            answered=Count("id", filter=OUTCOME_Q["answered"]),
            missed=Count("id", filter=OUTCOME_Q["missed"]),
        )
    )
    totals: dict[int, dict[str, int]] = defaultdict(lambda: {"answered": 0, "missed": 0})
    for r in rows:
        user = r["sync__user_id"] or owners.get(r["operator_line"])
        if user:
            totals[user]["answered"] += r["answered"]
            totals[user]["missed"] += r["missed"]
    people = bitrix_users.people_get(portal=portal)
    ranked = sorted(totals.items(), key=lambda kv: -(kv[1]["answered"] + kv[1]["missed"]))
    return [
        {"user": bitrix_users.person_dict(people, uid), **t}
        for uid, t in ranked[:15]
        if t["answered"] or t["missed"]
    ]
