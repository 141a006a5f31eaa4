"""The snapshot the chain is evaluated on (chain.Facts), read from presence, line mappings,
the routing settings and, for the CRM responsible, Bitrix24 (docs/routing.md "Inputs")."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from bitrixapp.models import Portal
from integration.agents import services as agent_services
from integration.agents.models import AgentState, State
from integration.bitrix import telephony
from integration.calls.models import CallSync
from integration.core import inputs
from integration.core.errors import IntegrationError
from integration.routing.chain import Facts, Person
from integration.routing.models import RoutingOverride, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping

logger = logging.getLogger(__name__)


def policy_get(*, portal: Portal | Any) -> RoutingPolicy:
    policy, _ = RoutingPolicy.objects.get_or_create(portal=portal)
    return policy


def steps_of(raw: Any) -> list[tuple[str, bool]]:
    """Stored steps as [(step, on)]; anything malformed is dropped (validation keeps it out)."""
    steps: list[tuple[str, bool]] = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, dict) and entry.get("step") in Step.values:
            steps.append((str(entry["step"]), bool(entry.get("on", True))))
    return steps


def person_of(agent: AgentState, *, now: datetime) -> Person:
    available = bool(agent.line) and agent_services.agent_can_take_dialer_call(agent=agent, now=now)
    why = "" if available else (agent.reason or agent.state)
    if not available and agent.polled_at is None:
        why = "not read yet"
    departments = tuple(
        d for d in (inputs.positive_id_or_none(x) for x in agent.departments or []) if d
    )
    return Person(
        user_id=agent.bitrix_user_id,
        line=agent.line,
        name=agent.name or str(agent.bitrix_user_id),
        available=available,
        why=why,
        missing=agent.user_missing or agent.state == State.INACTIVE,
        departments=departments,
        idle_since=agent.since if available else None,
    )


def responsible_of(*, portal: Portal, row: CallSync) -> int | None:
    """The CRM record's responsible (searchCrmEntities, docs/bitrix24.md §5.5); None when there
    is no record or Bitrix24 does not answer (the step is then skipped, never the reroute)."""
    if not row.phone_number:
        return None
    try:
        entities = telephony.search_crm_entities(portal, phone_number=row.phone_number)
    except IntegrationError as exc:
        logger.warning("responsible look-up failed; step skipped: %s", exc)
        return None
    entities.sort(
        key=lambda e: (
            str(e.get("CRM_ENTITY_TYPE")) != row.crm_entity_type
            or str(e.get("CRM_ENTITY_ID")) != str(row.crm_entity_id)
        )
    )
    for entity in entities:
        owner = inputs.positive_id_or_none(entity.get("ASSIGNED_BY_ID"))
        if owner:
            return owner
    return None


def facts_build(
    *, portal: Portal, row: CallSync, own_failed: str, unitalk_up: bool = True, look_up: bool = True
) -> Facts:
    """`look_up=False`: no Bitrix24 request (the CRM responsible step is then skipped)."""
    now = timezone.now()
    policy = policy_get(portal=portal)
    overrides = {o.bitrix_user_id: o for o in RoutingOverride.objects.filter(portal=portal)}
    caller = row.user_id
    mine = overrides.get(caller or 0)
    steps = steps_of(mine.steps if mine is not None and mine.steps is not None else policy.steps)
    people = {
        a.bitrix_user_id: person_of(a, now=now)
        for a in AgentState.objects.filter(portal=portal).select_related("portal")
    }
    line_owner = {
        m.line: m.bitrix_user_id for m in OperatorMapping.objects.filter(portal=portal) if m.line
    }
    responsible = None
    if look_up and unitalk_up and (Step.RESPONSIBLE, True) in steps:
        responsible = responsible_of(portal=portal, row=row)
    return Facts(
        caller_id=caller,
        steps=steps,
        people=people,
        line_owner=line_owner,
        backups={uid: o.backup_line for uid, o in overrides.items() if o.backup_line},
        responsible_id=responsible,
        duty_line=policy.duty_line,
        own_failed=own_failed,
        unitalk_up=unitalk_up,
    )


def facts_name(*, portal: Portal | Any, user_id: int | None) -> str:
    """A user's name as presence last read it, else their id."""
    name = (
        AgentState.objects.filter(portal=portal, bitrix_user_id=user_id or 0)
        .values_list("name", flat=True)
        .first()
    )
    return name or str(user_id or "?")


def anyone_available(*, portal: Portal | Any, besides: int | None) -> bool:
    """Someone other than `besides` can take a call now (stored state first, then the fresh
    predicate, so a portal with nobody available costs one query)."""
    candidates = (
        AgentState.objects.filter(portal=portal, state=State.AVAILABLE)
        .exclude(bitrix_user_id=besides or 0)
        .exclude(line="")
        .select_related("portal")
    )
    now = timezone.now()
    return any(
        agent_services.agent_can_take_dialer_call(agent=agent, now=now) for agent in candidates
    )
