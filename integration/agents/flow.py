"""Agent status as one table: job kind → the service it runs, what follows, what happens when
it dies (docs/agents.md §5.1.1). Handlers are thin: ids in, one service.

| kind                | runs                   | on success / follows                     | when it dies                  |
|---------------------|------------------------|------------------------------------------|-------------------------------|
| agents.poll         | poll.agents_poll       | transitions; push jobs when switched on  | — (failures counted inside: stale after 3) |
| agents.push         | push.agent_push        | sync failure cleared, notices replaced   | agent stays PAUSED(sync_failed), notices stay |
| agents.probe        | push.push_probe        | capability present / absent; pushes      | capability stays unknown      |
| agents.workday      | reverse.workday_follow | work day read back into the state        | —                             |
| agents.notice_clear | fallback.notice_clear  | "works again" replaces the notice        | —                             |
| (unitalk.webhook)   | _call_event_settled on settling | the line's agent recomputed     | —                             |
| (unitalk.reconcile) | _call_event_settled on settling | busy agents recomputed when calls were recovered | — |
| (searchCrmEntities) | _search_seen           | TIMEMAN_STATUS refreshes that agent      | —                             |
| (state change)      | _push_on_change        | agents.push when the switch is on        | —                             |

Importing this module is the registration (AgentsConfig.ready).
"""

from __future__ import annotations

import logging
from typing import Any

from bitrixapp.models import Portal
from integration import jobs
from integration.agents import fallback, poll, push, reverse, services
from integration.agents.models import AgentState, State
from integration.bitrix import telephony
from integration.calls import reconcile
from integration.core import lanes
from integration.models import Job
from integration.unitalk import intake

logger = logging.getLogger(__name__)


# Polling and probing are background work whoever asks for them (a mapping saved from an
# interactive job, the panel's retry): they must never hold up call logging (docs/agents.md §5.1).
@jobs.register(poll.KIND_POLL, lane=lanes.BACKGROUND)
def agents_poll(job: Job) -> dict[str, Any]:
    portal = Portal.objects.get(pk=job.payload["portal_id"])
    return poll.agents_poll(portal=portal, since=job.created_at)


@jobs.register(push.KIND_PUSH)
def agent_push(job: Job) -> dict[str, Any]:
    return push.agent_push(agent_id=int(job.payload["agent_id"]))


@jobs.register(push.KIND_PROBE, lane=lanes.BACKGROUND)
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


def _call_event_settled(job: Job, state: str) -> None:
    """A webhook was merged into its Call: the line's agent may be busy or free now. A
    reconciliation that recovered calls may have ended the one a busy agent was held by (its
    CALL_END never came): recompute the portal's busy agents now, not at the next poll."""
    if state != Job.State.SUCCEEDED or job.portal_id is None:
        return
    if job.kind == reconcile.KIND_RECONCILE:
        if (job.result or {}).get("recovered") and job.portal is not None:
            busy = AgentState.objects.filter(portal_id=job.portal_id, state=State.BUSY)
            services.agents_refresh(
                portal=job.portal, source="reconcile", agents=busy.select_related("portal")
            )
        return
    if job.kind != intake.KIND:
        return
    result = job.result or {}
    # The merge names the call's line in its result (calls/merge.py): nothing is read back. A
    # webhook that changed nothing (a duplicate, one already processed) changes no agent.
    if result.get("changed") and result.get("line"):
        services.agents_refresh_line(portal_id=job.portal_id, line=str(result["line"]))


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


jobs.on_settled(_call_event_settled)
telephony.search_observers.append(_search_seen)
