"""Agent presence: keep one AgentState per mapped user, recompute it, record every transition.

Recomputing needs no request: the inputs read from Bitrix24 are stored on the row, live calls
and line health come from our own Call rows (Unitalk webhooks, reconciled by history/get).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bitrixapp.models import Portal
from integration.agents.models import AgentState, AgentSync, AgentTransition, State, Toggle
from integration.agents.presence import Inputs, Presence, presence_compute
from integration.calls.models import Call
from integration.unitalk.models import OperatorMapping

logger = logging.getLogger(__name__)

#: Operator-leg outcomes that mean the agent's phone did not ring at all (docs/agents.md §5.1).
LINE_FAIL_STATES = frozenset({"CHANUNAVAIL", "UNREACHABLE", "NOANSWER"})

#: Listeners called with (agent, previous state, previous reason) after a transition commits.
_on_change: list[Any] = []


def on_change(hook: Any) -> Any:
    _on_change.append(hook)
    return hook


def agent_sync_get(*, portal: Portal | Any) -> AgentSync:
    sync, _ = AgentSync.objects.get_or_create(portal=portal)
    return sync


def poll_period_s() -> float:
    return float(settings.AGENT_POLL_WORK_S)


def sync_stale(*, sync: AgentSync) -> bool:
    """Bitrix24 polling failed for AGENT_STALE_PERIODS periods in a row (docs/agents.md §5.1)."""
    return sync.poll_failures >= settings.AGENT_STALE_PERIODS


# --- roster -------------------------------------------------------------------------------------


def agents_roster_sync(*, portal: Portal) -> list[int]:
    """One AgentState per mapped user; unmapped agents keep their row as NO_LINE.

    Returns the ids of agents whose line is new or changed (their timeman.settings are due).
    """
    mappings = {m.bitrix_user_id: m for m in OperatorMapping.objects.filter(portal=portal)}
    changed: list[int] = []
    with transaction.atomic():
        agents = {a.bitrix_user_id: a for a in AgentState.objects.filter(portal=portal)}
        for user_id, mapping in mappings.items():
            agent = agents.get(user_id)
            if agent is None:
                agent = AgentState.objects.create(
                    portal=portal, bitrix_user_id=user_id, line=mapping.line, name=mapping.name
                )
                changed.append(agent.pk)
            elif agent.line != mapping.line or (mapping.name and agent.name != mapping.name):
                if agent.line != mapping.line:
                    changed.append(agent.pk)
                AgentState.objects.filter(pk=agent.pk).update(
                    line=mapping.line, name=mapping.name or agent.name
                )
        gone = [a.pk for uid, a in agents.items() if uid not in mappings and a.line]
        AgentState.objects.filter(pk__in=gone).update(line="")
    if changed:
        AgentState.objects.filter(pk__in=changed).update(settings_checked_at=None)
    return changed


# --- inputs from our own rows -------------------------------------------------------------------


def _live_call(agent: AgentState, now: datetime) -> bool:
    """A Unitalk call on the agent's line without CALL_END, younger than the busy limit.

    An older one lost its CALL_END; reconciliation (history/get) completes it, and meanwhile it
    no longer holds the agent (docs/agents.md §5.1, "Busy never cleared").
    """
    limit = now - timedelta(seconds=settings.AGENT_BUSY_MAX_S)
    return Call.objects.filter(
        portal_id=agent.portal_id, operator_line=agent.line, ended=False, created_at__gte=limit
    ).exists()


def _wrap_up_until(agent: AgentState, now: datetime) -> datetime | None:
    if settings.AGENT_WRAP_UP_S <= 0:
        return None
    since = now - timedelta(seconds=settings.AGENT_WRAP_UP_S)
    last = (
        Call.objects.filter(
            portal_id=agent.portal_id,
            operator_line=agent.line,
            ended=True,
            talk_seconds__gt=0,
            ended_at__gte=since,
        )
        .order_by("-ended_at")
        .values_list("ended_at", flat=True)
        .first()
    )
    return last + timedelta(seconds=settings.AGENT_WRAP_UP_S) if last else None


def _line_failing(agent: AgentState, now: datetime) -> bool:
    """The last N outbound calls' operator legs all failed at once (docs/agents.md §5.1), within
    AGENT_LINE_FAIL_WINDOW_S. The window lets the state lapse: a paused agent is offered no
    dialer call, so no new call could ever clear it, and a whole campaign stalled that way
    (tests/e2e/test_campaign_chaos.py); after the window the next call tries the line again."""
    count = settings.AGENT_LINE_FAIL_COUNT
    since = now - timedelta(seconds=settings.AGENT_LINE_FAIL_WINDOW_S)
    last = list(
        Call.objects.filter(
            portal_id=agent.portal_id,
            operator_line=agent.line,
            ended=True,
            direction=Call.Direction.OUT,
            ended_at__gte=since,
        )
        .order_by("-ended_at", "-pk")
        .values_list("state", "full_seconds")[:count]
    )
    return len(last) == count and all(
        state in LINE_FAIL_STATES and (full or 0) <= 1 for state, full in last
    )


def agent_inputs(*, agent: AgentState, sync: AgentSync, now: datetime) -> Inputs:
    has_line = bool(agent.line)
    return Inputs(
        now=now,
        has_line=has_line,
        user_missing=agent.user_missing,
        user_active=agent.user_active,
        user_online=agent.user_online,
        live_call=has_line and _live_call(agent, now),
        wrap_up_until=_wrap_up_until(agent, now) if has_line else None,
        toggle=agent.toggle,
        time_tracking=agent.time_tracking,
        timeman_missing=sync.timeman_missing,
        timeman_status=agent.timeman_status,
        line_failing=has_line and _line_failing(agent, now),
        push_failed=agent.push_failed,
        stale=sync_stale(sync=sync),
    )


# --- recompute ----------------------------------------------------------------------------------


def agent_refresh(
    *, agent: AgentState, source: str, sync: AgentSync | None = None, now: datetime | None = None
) -> bool:
    """Recompute the effective state; on a change write the transition row. Returns changed."""
    now = now or timezone.now()
    sync = sync or agent_sync_get(portal=agent.portal)
    inputs = agent_inputs(agent=agent, sync=sync, now=now)
    presence = presence_compute(inputs)
    return _apply(agent, presence, source=source, now=now, wrap_up_until=inputs.wrap_up_until)


def _apply(
    agent: AgentState,
    presence: Presence,
    *,
    source: str,
    now: datetime,
    wrap_up_until: datetime | None,
) -> bool:
    if agent.state == presence.state and agent.reason == presence.reason:
        if agent.wrap_up_until != wrap_up_until:
            AgentState.objects.filter(pk=agent.pk).update(wrap_up_until=wrap_up_until)
            agent.wrap_up_until = wrap_up_until
        return False
    before = (agent.state, agent.reason)
    with transaction.atomic():
        AgentTransition.objects.create(
            agent=agent,
            from_state=agent.state,
            from_reason=agent.reason,
            to_state=presence.state,
            to_reason=presence.reason,
            source=source[:16],
            detail=presence.detail[:255],
            at=now,
        )
        AgentState.objects.filter(pk=agent.pk).update(
            state=presence.state, reason=presence.reason, since=now, wrap_up_until=wrap_up_until
        )
        agent.state, agent.reason, agent.since = presence.state, presence.reason, now
        agent.wrap_up_until = wrap_up_until
    # Hooks enqueue durable jobs (handed to the broker after commit by integration.jobs).
    for hook in _on_change:
        hook(agent, *before)
    logger.info(
        "agent state changed",
        extra={
            "agent": agent.bitrix_user_id,
            "from": before[0],
            "to": presence.state,
            "reason": presence.reason,
            "source": source,
        },
    )
    return True


def agents_refresh(
    *,
    portal: Portal,
    source: str,
    now: datetime | None = None,
    agents: Iterable[AgentState] | None = None,
) -> int:
    """Recompute every agent of the portal (or just `agents`); returns how many changed."""
    now = now or timezone.now()
    sync = agent_sync_get(portal=portal)
    changed = 0
    if agents is None:
        agents = AgentState.objects.filter(portal=portal).select_related("portal")
    for agent in agents:
        changed += agent_refresh(agent=agent, source=source, sync=sync, now=now)
    return changed


def agents_refresh_line(*, portal_id: int, line: str, source: str = "call") -> int:
    """A call on `line` started or ended: recompute its agent (no-op when nobody has it)."""
    if not line:
        return 0
    changed = 0
    for agent in AgentState.objects.filter(portal_id=portal_id, line=line).select_related("portal"):
        changed += agent_refresh(agent=agent, source=source)
    return changed


# --- the agent's own toggle ----------------------------------------------------------------------


def agent_toggle_set(*, agent: AgentState, toggle: str, note: str = "") -> AgentState:
    """The agent chose Available / Break / Offline (with an optional reason)."""
    if toggle not in Toggle.values:
        raise ValueError(f"unknown toggle {toggle!r}")
    AgentState.objects.filter(pk=agent.pk).update(toggle=toggle, toggle_note=note[:255])
    agent.toggle, agent.toggle_note = toggle, note[:255]
    agent_refresh(agent=agent, source="toggle")
    return agent


# --- the one predicate the autodialer uses -------------------------------------------------------


def agent_can_take_dialer_call(*, agent: AgentState, now: datetime | None = None) -> bool:
    """Can the dialer give this agent the next number now? (docs/agents.md §5.2)

    Only an AVAILABLE agent whose state is fresh: recomputed here from the stored inputs and the
    live calls, so a call that started a moment ago, a Break pressed a moment ago or polling that
    just went stale count at once; never before the first successful Bitrix24 reading.
    """
    now = now or timezone.now()
    sync = agent_sync_get(portal=agent.portal)
    if agent.polled_at is None:
        return False
    presence = presence_compute(agent_inputs(agent=agent, sync=sync, now=now))
    return presence.state == State.AVAILABLE
