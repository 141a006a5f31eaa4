"""Optional push of the effective state to Unitalk (docs/agents.md §5.1 item 3).

Off by default (AgentSync.push_enabled) because the API is UNCONFIRMED (names.py); probed before
use. One job per (agent, desired value, change): the handler sends the agent's desired value *as
it is now*, so an older job that runs late sends the newer value (last writer wins) and a job
whose value is already in Unitalk does nothing (idempotent). The first failed attempt pauses
the agent for the dialer at once (PAUSED(sync_failed), notices); the job keeps retrying with
backoff, and the first success clears it all.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from integration import jobs
from integration.agents import fallback, services
from integration.agents.models import AgentState, AgentSync
from integration.agents.presence import presence_compute
from integration.core.errors import IntegrationError
from integration.unitalk import client as unitalk_client
from integration.unitalk import names
from integration.unitalk import services as unitalk_services

logger = logging.getLogger(__name__)

KIND_PUSH = "agents.push"
KIND_PROBE = "agents.probe"


def desired_value(*, agent: AgentState, sync: AgentSync) -> str:
    """What Unitalk should show: the state as if the push itself had not failed."""
    inputs = services.agent_inputs(agent=agent, sync=sync, now=timezone.now())
    state = presence_compute(_without_push_failure(inputs)).state
    return names.OPERATOR_STATUS_VALUES.get(state, names.OPERATOR_STATUS_VALUES["paused"])


def _without_push_failure(inputs: Any) -> Any:
    from dataclasses import replace

    return replace(inputs, push_failed=False)


def push_enqueue(*, agent: AgentState, sync: AgentSync | None = None, force: bool = False) -> bool:
    """Queue a push when the switch is on and Unitalk does not already show the value
    (`force`: a person asked to retry, a fresh job even for the same value)."""
    sync = sync or services.agent_sync_get(portal=agent.portal)
    if not sync.push_enabled or not agent.line:
        return False
    value = desired_value(agent=agent, sync=sync)
    if value == agent.pushed_state and not agent.push_failed and not force:
        return False
    stamp = timezone.now().timestamp() if force else agent.since.timestamp()
    jobs.job_enqueue(
        kind=KIND_PUSH,
        key=f"{KIND_PUSH}:{agent.pk}:{value}:{stamp:.3f}",
        portal=agent.portal,
        subject=f"agent:{agent.bitrix_user_id}",
        payload={"agent_id": agent.pk},
    )
    return True


def _mark(agent: AgentState, *, failed: bool, error: str = "", pushed: str | None = None) -> None:
    fields: dict[str, Any] = {"push_failed": failed, "push_error": error[:2000]}
    if pushed is not None:
        fields["pushed_state"] = pushed
    was_failed = agent.push_failed
    AgentState.objects.filter(pk=agent.pk).update(**fields)
    for name, value in fields.items():
        setattr(agent, name, value)
    services.agent_refresh(agent=agent, source="push")
    if failed and not was_failed:
        fallback.sync_problem_raise(agent=agent, error=error)
    elif not failed and was_failed:
        fallback.sync_problem_resolve(agent=agent)


def agent_push(*, agent_id: int) -> dict[str, Any]:
    """Job: send the agent's current desired value. Raises the client's errors to retry."""
    agent = AgentState.objects.select_related("portal").get(pk=agent_id)
    sync = services.agent_sync_get(portal=agent.portal)
    if not sync.push_enabled:
        if agent.push_failed:
            _mark(agent, failed=False)
        return {"skipped": "push switched off"}
    if sync.push_capability == AgentSync.Capability.ABSENT:
        _mark(agent, failed=True, error="Unitalk has no operator status API for this account")
        return {"skipped": "capability absent"}
    value = desired_value(agent=agent, sync=sync)
    if value == agent.pushed_state and not agent.push_failed:
        return {"skipped": "already shown", "value": value}
    connection = unitalk_services.connection_for_work(portal=agent.portal)
    creds = unitalk_services.connection_credentials(connection=connection)
    try:
        unitalk_client.operator_status_set(creds, line=agent.line, status=value)
    except IntegrationError as exc:
        if unitalk_client.is_unknown_method(exc):
            AgentSync.objects.filter(pk=sync.pk).update(
                push_capability=AgentSync.Capability.ABSENT, push_probed_at=timezone.now()
            )
        _mark(agent, failed=True, error=str(exc))
        raise
    _mark(agent, failed=False, pushed=value)
    return {"pushed": value}


def push_probe(*, portal: Any) -> dict[str, Any]:
    """Job: does this Unitalk account answer the operator-status API? Asked when switched on."""
    sync = services.agent_sync_get(portal=portal)
    agent = AgentState.objects.filter(portal=portal).exclude(line="").first()
    if agent is None:
        return {"skipped": "no mapped agent to probe with"}
    connection = unitalk_services.connection_for_work(portal=portal)
    creds = unitalk_services.connection_credentials(connection=connection)
    try:
        unitalk_client.operator_status_get(creds, line=agent.line)
    except IntegrationError as exc:
        if not unitalk_client.is_unknown_method(exc):
            raise  # a fault, not an answer: the probe retries
        capability = AgentSync.Capability.ABSENT
    else:
        capability = AgentSync.Capability.PRESENT
    AgentSync.objects.filter(pk=sync.pk).update(
        push_capability=capability, push_probed_at=timezone.now()
    )
    sync.push_capability = capability
    for row in AgentState.objects.filter(portal=portal).exclude(line="").select_related("portal"):
        if capability == AgentSync.Capability.ABSENT and sync.push_enabled:
            _mark(row, failed=True, error="Unitalk has no operator status API for this account")
        else:
            push_enqueue(agent=row, sync=sync)
    return {"capability": capability}


def push_settings_changed(*, portal: Any, sync: AgentSync) -> None:
    """The admin switched push on or off: probe, or clear every sync failure it caused."""
    if sync.push_enabled:
        jobs.job_enqueue(
            kind=KIND_PROBE,
            key=f"{KIND_PROBE}:{portal.pk}:{timezone.now().timestamp():.0f}",
            portal=portal,
            subject=f"portal:{portal.pk}",
        )
        return
    for agent in AgentState.objects.filter(portal=portal, push_failed=True).select_related(
        "portal"
    ):
        _mark(agent, failed=False)
