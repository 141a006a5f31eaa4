"""Inbound calls (docs/routing.md "Inbound"): Unitalk routes the live call, the app routes the
card and the follow-up: who gets a ringing call's card when the line's user is away, who calls a
missed call back, and the escalation of a callback left open."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.utils import timezone

from integration import jobs
from integration.agents import services as agent_services
from integration.agents.models import AgentState, State
from integration.agents.presence import presence_compute
from integration.calls import failed
from integration.calls.models import CallSync, FailedCall
from integration.core import alerts
from integration.models import Notification
from integration.routing import chain, facts
from integration.routing.models import Reroute
from integration.unitalk import selectors as unitalk_selectors

logger = logging.getLogger(__name__)


def _line_agent_unavailable(*, portal: Any, line: str = "", user_id: int | None = None) -> bool:
    """The line's (or user's) agent is known to presence and cannot take a call now. Unknown
    agents keep the pipeline's default: presence that was never read decides nothing. The call
    that is ringing on the line does not count as the agent being busy (it is that call)."""
    rows = AgentState.objects.filter(portal=portal).select_related("portal")
    agent = (rows.filter(line=line) if line else rows.filter(bitrix_user_id=user_id or 0)).first()
    if agent is None or agent.polled_at is None:
        return False
    sync = agent_services.agent_sync_get(portal=portal)
    inputs = agent_services.agent_inputs(agent=agent, sync=sync, now=timezone.now())
    if line:
        inputs = replace(inputs, live_call=False)
    return presence_compute(inputs).state != State.AVAILABLE


def inbound_pick(*, row: CallSync, call: Any) -> int | None:
    """calls/takeover.py: a ringing inbound call whose line's user is not available goes to the
    first available person of the chain (the CRM responsible is not looked up while it rings:
    that would be a Bitrix24 request inside the webhook's transaction). Recorded once."""
    portal = row.portal
    policy = facts.policy_get(portal=portal)
    if not policy.enabled or not _line_agent_unavailable(portal=portal, line=call.operator_line):
        return None
    owner = unitalk_selectors.operator_user_for_line(portal, call.operator_line)
    if not facts.anyone_available(portal=portal, besides=owner):
        return None
    probe = CallSync(portal=portal, user_id=owner, phone_number=call.client_number)
    snapshot = facts.facts_build(portal=portal, row=probe, own_failed="", look_up=False)
    decision = chain.chain_evaluate(snapshot)
    if decision.person is None:
        return None
    person = decision.person
    viewers = _present_colleagues(snapshot, owner=owner, picked=person.user_id)
    Reroute.objects.get_or_create(
        sync=row,
        defaults={
            "portal": portal,
            "trigger": Reroute.Trigger.INBOUND,
            "state": Reroute.State.CARD,
            "from_user_id": owner,
            "phone_number": call.client_number,
            "path": decision.path,
            "step": decision.step,
            "to_user_id": person.user_id,
            "to_name": person.name,
            "to_line": person.line,
            "viewers": viewers,
        },
    )
    logger.info("inbound card rerouted", extra={"step": decision.step, "to": person.user_id})
    return person.user_id


#: At most this many colleagues see a handed-on card besides the person it went to.
CARD_VIEWERS_MAX = 10


def _present_colleagues(facts: Any, *, owner: int | None, picked: int) -> list[int]:
    """Who else sees a handed-on ringing call: the owner's colleagues (same department; every
    agent when the owner has none) who are available now, longest idle first."""
    mine = set(facts.people[owner].departments) if owner in facts.people else set()
    present = [
        p
        for p in facts.people.values()
        if p.available
        and not p.missing
        and p.user_id not in (owner, picked)
        and (not mine or mine & set(p.departments))
    ]
    present.sort(key=lambda p: (p.idle_since is None, p.idle_since or timezone.now(), p.user_id))
    return [p.user_id for p in present[:CARD_VIEWERS_MAX]]


def card_viewers(*, row: CallSync) -> list[int]:
    """calls/takeover.py: the colleagues who see a ringing call's card that routing handed on."""
    reroute = Reroute.objects.filter(
        sync_id=row.pk, trigger=Reroute.Trigger.INBOUND, state=Reroute.State.CARD
    ).first()
    return [int(u) for u in reroute.viewers] if reroute is not None else []


def missed_pick(*, row: CallSync, owner: int | None) -> int | None:
    """calls/takeover.py: a missed call's callback goes to its owner if available, else to the
    first available person of the chain from the owner on; None keeps the owner."""
    portal = row.portal
    policy = facts.policy_get(portal=portal)
    if not owner or not policy.enabled:
        return None
    if not _line_agent_unavailable(portal=portal, user_id=owner):
        return None
    if not facts.anyone_available(portal=portal, besides=owner):
        return None
    probe = CallSync(portal=portal, user_id=owner, phone_number=row.phone_number)
    decision = chain.chain_evaluate(
        facts.facts_build(portal=portal, row=probe, own_failed="", look_up=False)
    )
    return decision.person.user_id if decision.person is not None else None


KIND_ESCALATE = "routing.escalate"
#: How far back the sweep looks for open callback items (older ones were escalated or are
#: someone's old backlog on the missed-call list).
ESCALATE_LOOKBACK = timedelta(days=7)


def escalations_enqueue(*, now: Any = None) -> int:
    """Beat (every ROUTING_ESCALATE_TICK_S): an escalation job for each open callback item
    (missed calls, reroutes ending in the callback task) older than its portal's
    `escalate_after_min` and not escalated yet. A sweep, not a delayed job per item: nothing
    waits in the queue for half an hour, and a changed setting applies to open items at once."""
    now = now or timezone.now()
    items = FailedCall.objects.filter(
        kind=FailedCall.Kind.MISSED,
        state__in=failed.OPEN_STATES,
        created_at__gte=now - ESCALATE_LOOKBACK,
        created_at__lte=now - timedelta(minutes=1),
    ).select_related("portal")
    minutes: dict[int, int] = {}
    count = 0
    for item in items:
        if item.portal_id not in minutes:
            policy = facts.policy_get(portal=item.portal)
            minutes[item.portal_id] = policy.escalate_after_min if policy.enabled else 0
        wait = minutes[item.portal_id]
        if not wait or item.created_at > now - timedelta(minutes=wait):
            continue
        if Notification.objects.filter(portal=item.portal, tag=_escalated_tag(item)).exists():
            continue
        jobs.job_enqueue(
            kind=KIND_ESCALATE,
            key=f"{KIND_ESCALATE}:{item.pk}",
            portal=item.portal,
            subject=f"failed-call:{item.pk}",
            payload={"item_id": item.pk},
        )
        count += 1
    return count


def _escalated_tag(item: FailedCall) -> str:
    return f"routing:escalated:{item.pk}"


def callback_escalate(*, item_id: int) -> dict[str, Any]:
    """Job `routing.escalate`: the callback is still open: its owner's manager is told (the
    admins when nobody heads the owner's department)."""
    item = FailedCall.objects.select_related("portal").filter(pk=item_id).first()
    if item is None or item.state == FailedCall.State.RESOLVED:
        return {"skipped": "resolved"}
    manager = (
        AgentState.objects.filter(portal=item.portal, bitrix_user_id=item.owner_user_id or 0)
        .values_list("manager_user_id", flat=True)
        .first()
    )
    minutes = facts.policy_get(portal=item.portal).escalate_after_min
    alerts.notification_raise(
        portal=item.portal,
        kind="routing.escalated",
        message=f"callback to {item.phone_number} open for {minutes} min",
        tag=_escalated_tag(item),
        severity=Notification.Severity.WARNING,
        user_id=manager or None,
        params={
            "phone": item.phone_number,
            "name": facts.facts_name(portal=item.portal, user_id=item.owner_user_id),
            "n": minutes,
        },
        context={"item_id": item.pk},
    )
    return {"escalated_to": manager or "admins"}
