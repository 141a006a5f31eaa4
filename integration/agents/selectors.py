"""Reads of agent status for pages: panel rows, one agent, the overview's summary."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from integration.agents.models import AgentState, AgentSync, Reason, State


def state_labels() -> dict[str, str]:
    return {
        State.AVAILABLE: _("Available"),
        State.BUSY: _("Busy"),
        State.WRAP_UP: _("Wrap-up"),
        State.PAUSED: _("Paused"),
        State.NO_LINE: _("No line"),
        State.INACTIVE: _("Inactive"),
    }


def reason_labels() -> dict[str, str]:
    return {
        Reason.BREAK: _("on a break"),
        Reason.DAY_PAUSED: _("work day paused in Bitrix24"),
        Reason.DAY_CLOSED: _("work day not open in Bitrix24"),
        Reason.DAY_EXPIRED: _("yesterday's work day was not closed in Bitrix24"),
        Reason.OFFLINE: _("offline in Bitrix24"),
        Reason.MANUAL: _("set offline"),
        Reason.SYNC_FAILED: _("status sync failed"),
        Reason.LINE_FAILING: _("the line is failing"),
    }


def _when(moment: Any) -> str:
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    fmt = "H:i" if local.date() == timezone.localtime().date() else "SHORT_DATETIME_FORMAT"
    return formats.date_format(local, fmt)


def agent_dict(agent: AgentState) -> dict[str, Any]:
    """One agent as pages show it: "Paused: work day not open in Bitrix24 since 09:02"."""
    state = state_labels().get(agent.state, agent.state)
    reason = reason_labels().get(agent.reason, "") if agent.reason else ""
    since = _when(agent.since)
    summary = f"{state}: {reason}" if reason else state
    if since:
        summary = _("%(summary)s since %(time)s") % {"summary": summary, "time": since}
    return {
        "id": agent.pk,
        "user_id": agent.bitrix_user_id,
        "name": agent.name or f"#{agent.bitrix_user_id}",
        "line": agent.line,
        "state": agent.state,
        "reason": agent.reason,
        "state_label": state,
        "reason_label": reason,
        "since": agent.since.isoformat(),
        "since_label": since,
        "summary": summary,
        "toggle": agent.toggle,
        "toggle_note": agent.toggle_note,
        "last_sync": agent.polled_at.isoformat() if agent.polled_at else "",
        "last_sync_label": _when(agent.polled_at) or "—",
        "sync_error": agent.push_error if agent.push_failed else "",
    }


def agent_rows(*, portal: Any) -> list[dict[str, Any]]:
    agents = AgentState.objects.filter(portal=portal).order_by("name", "bitrix_user_id")
    return [agent_dict(a) for a in agents]


def agent_for_user(*, portal: Any, user_id: int) -> AgentState | None:
    return AgentState.objects.filter(portal=portal, bitrix_user_id=user_id).first()


def agent_get(*, portal: Any, agent_id: int) -> AgentState | None:
    return AgentState.objects.filter(portal=portal, pk=agent_id).select_related("portal").first()


def presence_summary(*, portal: Any) -> dict[str, Any]:
    """Counts per state for the overview, with their labels."""
    counts = dict(
        AgentState.objects.filter(portal=portal)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    labels = state_labels()
    return {
        "total": sum(counts.values()),
        "states": [{"state": s, "label": labels[s], "count": counts.get(s, 0)} for s in labels],
    }


def sync_settings(*, portal: Any) -> dict[str, Any]:
    sync = AgentSync.objects.filter(portal=portal).first()
    if sync is None:
        return {"push_enabled": False, "reverse_enabled": False, "push_capability": "unknown"}
    return {
        "push_enabled": sync.push_enabled,
        "reverse_enabled": sync.reverse_enabled,
        "push_capability": sync.push_capability,
        "last_poll_ok": sync.last_poll_ok_at.isoformat() if sync.last_poll_ok_at else "",
        "poll_failures": sync.poll_failures,
    }
