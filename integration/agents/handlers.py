"""Job kinds and listeners of agent status (registered at start-up by AgentsConfig.ready).

Thin: ids in, one service each. The listeners keep presence in step with work that other parts
already do: a processed Unitalk webhook (a call started or ended on a line), a searchCrmEntities
answer (a free TIMEMAN_STATUS), a state change (push to Unitalk when switched on).
"""

from __future__ import annotations

import logging
from typing import Any

from bitrixapp.models import Portal
from integration import jobs
from integration.agents import fallback, poll, push, reverse, services
from integration.agents.models import AgentState
from integration.bitrix import telephony
from integration.calls.models import Call
from integration.models import Job
from integration.unitalk import intake
from integration.unitalk.models import UnitalkEvent

logger = logging.getLogger(__name__)


@jobs.register(poll.KIND_POLL)
def agents_poll(job: Job) -> dict[str, Any]:
    return poll.agents_poll(portal=Portal.objects.get(pk=job.payload["portal_id"]))


@jobs.register(push.KIND_PUSH)
def agent_push(job: Job) -> dict[str, Any]:
    return push.agent_push(agent_id=int(job.payload["agent_id"]))


@jobs.register(push.KIND_PROBE)
def push_probe(job: Job) -> dict[str, Any]:
    return push.push_probe(portal=job.portal)


@jobs.register(reverse.KIND_DAY)
def workday_follow(job: Job) -> dict[str, Any]:
    return reverse.workday_follow(agent_id=int(job.payload["agent_id"]), op=job.payload["op"])


@jobs.register(fallback.KIND_NOTICE_CLEAR)
def notice_clear(job: Job) -> dict[str, Any]:
    return fallback.notice_clear(notification_id=int(job.payload["notification_id"]))


@services.on_change
def _push_on_change(agent: AgentState, before_state: str, before_reason: str) -> None:
    push.push_enqueue(agent=agent)


@jobs.job_settled.connect
def _call_event_settled(sender: Any, job: Job, state: str, **kwargs: Any) -> None:
    """A webhook was merged into its Call: the line's agent may be busy or free now."""
    if job.kind != intake.KIND or state != Job.State.SUCCEEDED or job.portal_id is None:
        return
    event = UnitalkEvent.objects.filter(pk=job.payload.get("event_id")).first()
    if event is None:
        return
    line = (
        Call.objects.filter(portal_id=job.portal_id, unitalk_call_id=event.call_id)
        .values_list("operator_line", flat=True)
        .first()
    )
    if line and AgentState.objects.filter(portal_id=job.portal_id, line=line).exists():
        services.agents_refresh_line(portal_id=job.portal_id, line=line)


def _search_seen(portal: Portal, rows: list[dict[str, Any]]) -> None:
    """searchCrmEntities' ASSIGNED_BY.TIMEMAN_STATUS refreshes that agent (docs/agents.md §1.2)."""
    for row in rows:
        assigned = row.get("ASSIGNED_BY")
        if not isinstance(assigned, dict):
            continue
        status = str(assigned.get("TIMEMAN_STATUS") or "").upper()[:16]
        try:
            user_id = int(assigned.get("ID") or 0)
        except (TypeError, ValueError):
            continue
        if not status or user_id <= 0:
            continue
        agent = AgentState.objects.filter(portal=portal, bitrix_user_id=user_id).first()
        if agent is None or agent.timeman_status == status:
            continue
        AgentState.objects.filter(pk=agent.pk).update(timeman_status=status)
        agent.timeman_status = status
        services.agent_refresh(agent=agent, source="search")


telephony.search_observers.append(_search_seen)
