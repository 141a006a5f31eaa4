"""Reverse direction, opt-in (docs/agents.md §5.1 item 4): the agent's Break pauses their
Bitrix24 work day (`timeman.pause`), coming back reopens it (`timeman.open`). The app never
calls `timeman.close`: closing writes the time sheet's end of day, a person's decision.
"""

from __future__ import annotations

from typing import Any

from integration import jobs
from integration.agents import services
from integration.agents.models import AgentState, Toggle
from integration.bitrix import timeman

KIND_DAY = "agents.workday"
PAUSE, OPEN = "pause", "open"


def workday_follow_enqueue(*, agent: AgentState, previous_toggle: str) -> str | None:
    """After a toggle change: queue pause/open when the portal opted in. Returns the op."""
    sync = services.agent_sync_get(portal=agent.portal)
    if not sync.reverse_enabled or sync.timeman_missing or agent.time_tracking is False:
        return None
    op = None
    if agent.toggle == Toggle.BREAK and agent.timeman_status == "OPENED":
        op = PAUSE
    elif previous_toggle == Toggle.BREAK and agent.toggle == Toggle.AVAILABLE:
        op = OPEN if agent.timeman_status == "PAUSED" else None
    if op is None:
        return None
    jobs.job_enqueue(
        kind=KIND_DAY,
        key=f"{KIND_DAY}:{agent.pk}:{op}:{agent.updated_at.timestamp():.3f}",
        portal=agent.portal,
        subject=f"agent:{agent.bitrix_user_id}",
        payload={"agent_id": agent.pk, "op": op},
    )
    return op


def workday_follow(*, agent_id: int, op: str) -> dict[str, Any]:
    """Job: pause or reopen the work day, then read it back into the agent's state."""
    agent = AgentState.objects.select_related("portal").get(pk=agent_id)
    if op == PAUSE:
        result = timeman.day_pause(agent.portal, user_id=agent.bitrix_user_id)
    elif op == OPEN:
        result = timeman.day_open(agent.portal, user_id=agent.bitrix_user_id)
    else:
        raise ValueError(f"unknown work-day operation {op!r}")
    status = str(result.get("STATUS") or "") if isinstance(result, dict) else ""
    if status:
        AgentState.objects.filter(pk=agent.pk).update(timeman_status=status.upper()[:16])
        agent.timeman_status = status.upper()[:16]
        services.agent_refresh(agent=agent, source="workday")
    return {"op": op, "status": status}


def agent_toggle(*, agent: AgentState, toggle: str, note: str = "") -> AgentState:
    """The agent's own choice in the app, then the work day follows it when opted in."""
    previous = agent.toggle
    agent = services.agent_toggle_set(agent=agent, toggle=toggle, note=note)
    agent.refresh_from_db()
    if previous != agent.toggle:
        workday_follow_enqueue(agent=agent, previous_toggle=previous)
    return agent
