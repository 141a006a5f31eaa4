"""The overview's charts as inline SVG drawn on the server (no script, no library, no CDN).

Bars only are SVG (stretched to the frame's width with preserveAspectRatio="none"); every text is
HTML around them, so labels keep their size at 1280, 800 and ~400 px (docs/pages.md "Charts").
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bitrixapp.models import Portal
from integration.calls import stats

BAR_W, STEP, HEIGHT = 8, 10, 100


def _n(value: float) -> str:
    # SVG wants "66.67" whatever the page's language: templates would localise a float ("66,67").
    return f"{value:.2f}".rstrip("0").rstrip(".")


SERIES = ("answered", "missed", "failed")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes = max(round(seconds / 60), 0)
    if minutes < 1:
        return ngettext("%(n)d sec", "%(n)d sec", seconds) % {"n": seconds}
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return ngettext("%(n)d min", "%(n)d min", minutes) % {"n": minutes}
    return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}


def days_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars per day: rects with their series, and a title per day for the tooltip."""
    top = max((d["answered"] + d["missed"] + d["failed"] for d in days), default=0) or 1
    bars = []
    for n, d in enumerate(days):
        y = HEIGHT
        rects = []
        for series in SERIES:
            h = d[series] * HEIGHT / top
            if h:
                y -= h
                rects.append({"series": series, "y": _n(y), "h": _n(h)})
        bars.append(
            {
                "x": n * STEP + 1,
                "rects": rects,
                "title": _("%(day)s: %(a)d answered, %(m)d missed, %(f)d not connected")
                % {
                    "day": d["day"].isoformat(),
                    "a": d["answered"],
                    "m": d["missed"],
                    "f": d["failed"],
                },
            }
        )
    totals = {s: sum(d[s] for d in days) for s in SERIES}
    return {
        "bars": bars,
        "width": len(days) * STEP,
        "height": HEIGHT,
        "bar_w": BAR_W,
        "top": top,
        "first": days[0]["day"] if days else None,
        "last": days[-1]["day"] if days else None,
        "totals": totals,
        "empty": not any(totals.values()),
    }


def charts_context(*, portal: Portal) -> dict[str, Any]:
    callback = stats.callback_median(portal=portal)
    health = stats.sync_health(portal=portal)
    users = stats.per_user(portal=portal)
    top = max((u["answered"] + u["missed"] for u in users), default=0) or 1
    for u in users:
        u["answered_w"] = _n(u["answered"] * 100 / top)
        u["missed_w"] = _n(u["missed"] * 100 / top)
    return {
        "days": days_chart(stats.calls_per_day(portal=portal)),
        "callback": callback | {"median_text": _duration(callback["median_s"])},
        "health": health
        | {"percent": round(health["share"] * 100) if health["share"] is not None else None},
        "users": users,
        "sync_in_time_s": stats.SYNC_IN_TIME_S,
    }
