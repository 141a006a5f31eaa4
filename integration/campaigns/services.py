"""Campaign writes: create, enrol agents and numbers, start / pause / stop (docs/agents.md §5.2).

The tick (tick.py) and outcomes (outcomes.py) are the dialer itself; these are what managers and
sources do to a campaign.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from integration import jobs
from integration.agents import selectors as agent_selectors
from integration.campaigns.models import Campaign, CampaignAgent, CampaignItem
from integration.campaigns.phones import PhoneInvalid, phone_normalise
from integration.core import alerts
from integration.models import Notification

logger = logging.getLogger(__name__)

KIND_TICK = "campaign.tick"
KIND_LOAD = "campaign.load"
KIND_COMMENT = "campaign.comment"
KIND_TODO = "campaign.todo"
#: The message code of "the dialer paused you / your agent" (integration/core/messages.py).
KIND_AGENT_PAUSED = "campaign.agent_paused"
#: The message code of "the campaign paused itself: no agent available".
KIND_AUTO_PAUSED = "campaign.auto_paused"


class CampaignStateError(ValueError):
    """The action does not fit the campaign's state (e.g. start a finished campaign)."""


@dataclass(frozen=True)
class Entry:
    """One number a source offers: its CRM owner and the phone as the source spelled it."""

    raw_phone: str
    entity_type: str = ""
    entity_type_id: int | None = None
    entity_id: int | None = None
    phone_owner_type_id: int | None = None
    phone_owner_id: int | None = None
    responsible_user_id: int | None = None
    call_list_id: int | None = None


def campaign_create(
    *, portal: Any, name: str, agent_user_ids: list[int], **fields: Any
) -> Campaign:
    """A draft campaign with its agents. Raises ValueError for a bad field (nothing stored)."""
    name = (name or "").strip()
    if not name:
        raise ValueError("a campaign needs a name")
    with transaction.atomic():
        campaign = Campaign(portal=portal, name=name[:255], **fields)
        campaign.full_clean(exclude=["portal"])
        campaign.save()
        for user_id in dict.fromkeys(agent_user_ids):
            CampaignAgent.objects.create(campaign=campaign, bitrix_user_id=int(user_id))
    return campaign


def items_add(*, campaign: Campaign, entries: list[Entry]) -> dict[str, int]:
    """Enrol numbers, deduped by normalised phone within the campaign.

    A number that cannot be normalised is kept as a SKIPPED item with the reason, so the page
    shows what was left out. Returns counts: added, duplicate, invalid.
    """
    added = duplicate = invalid = 0
    seen = set(
        CampaignItem.objects.filter(campaign=campaign)
        .exclude(phone="")
        .values_list("phone", flat=True)
    )
    blocked = set(campaign.do_not_call or [])
    rows: list[CampaignItem] = []
    for entry in entries:
        common = {
            "campaign": campaign,
            "raw_phone": entry.raw_phone[:64],
            "entity_type": entry.entity_type,
            "entity_type_id": entry.entity_type_id,
            "entity_id": entry.entity_id,
            "phone_owner_type_id": entry.phone_owner_type_id,
            "phone_owner_id": entry.phone_owner_id,
            "responsible_user_id": entry.responsible_user_id,
            "call_list_id": entry.call_list_id,
        }
        try:
            phone = phone_normalise(entry.raw_phone)
        except PhoneInvalid as exc:
            rows.append(CampaignItem(**common, state=CampaignItem.State.SKIPPED, reason=str(exc)))
            invalid += 1
            continue
        if phone in seen:
            duplicate += 1
            continue
        seen.add(phone)
        state, reason = CampaignItem.State.PENDING, ""
        if phone in blocked:
            state, reason = CampaignItem.State.SKIPPED, "on the do-not-call list"
        rows.append(CampaignItem(**common, phone=phone, state=state, reason=reason))
        added += 1
    # ignore_conflicts: another loader racing on the same number loses quietly (dedupe).
    CampaignItem.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return {"added": added, "duplicate": duplicate, "invalid": invalid}


def tick_key_prefix(*, campaign_id: int) -> str:
    """The start of every tick job's key of one campaign (`campaign.tick:<id>:<slot>`)."""
    return f"{KIND_TICK}:{campaign_id}:"


def ticks_prune(*, campaign_id: int) -> int:
    """Delete this campaign's succeeded tick jobs but the newest CAMPAIGN_TICK_KEEP.

    A tick runs every CAMPAIGN_TICK_S (3 s): a row each would be ~29,000 rows a day per running
    campaign that say nothing once they succeeded (docs/campaigns.md, "Tick rows").
    """
    from django.conf import settings

    return jobs.jobs_prune_succeeded(
        kind=KIND_TICK,
        key_prefix=tick_key_prefix(campaign_id=campaign_id),
        keep=settings.CAMPAIGN_TICK_KEEP,
    )


def tick_enqueue(*, campaign: Campaign, delay_s: float = 0, reason: str = "period") -> None:
    """Schedule the campaign's tick. Later ticks are keyed per time slot, so they merge; a tick
    for now (a call ended: an agent is free) merges only with one still waiting to run. Keyed
    by slot too, it met the slot's tick that had already run and was dropped, and the free
    agent waited for the next period (bench/campaign.py)."""
    from django.conf import settings

    from integration.models import Job

    prefix = tick_key_prefix(campaign_id=campaign.pk)
    now = timezone.now()
    if delay_s <= 0:
        waiting = Job.objects.filter(
            kind=KIND_TICK,
            idempotency_key__startswith=prefix,
            state=Job.State.PENDING,
            next_attempt_at__lte=now,
        )
        if waiting.exists():
            return
        key = f"{prefix}now:{uuid.uuid4().hex}"
    else:
        slot = int((now.timestamp() + delay_s) // max(0.5, settings.CAMPAIGN_TICK_S / 3))
        key = f"{prefix}{slot}"
    jobs.job_enqueue(
        kind=KIND_TICK,
        key=key,
        portal=campaign.portal,
        subject=f"campaign {campaign.pk} ({reason})",
        payload={"campaign_id": campaign.pk},
        delay_s=delay_s,
    )


def campaign_start(*, campaign: Campaign) -> Campaign:
    """Draft or paused → running, and tick now. Raises CampaignStateError otherwise."""
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk, state__in=[Campaign.State.DRAFT, Campaign.State.PAUSED]
        ).update(state=Campaign.State.RUNNING, state_reason="", no_agent_since=None)
        if not updated:
            raise CampaignStateError(f"a {campaign.get_state_display()} campaign cannot start")
        campaign.refresh_from_db()
        tick_enqueue(campaign=campaign, reason="start")
    alerts.notification_resolve(portal=campaign.portal_id, tag=campaign_autopause_tag(campaign))
    return campaign


def campaign_autopause_tag(campaign: Campaign) -> str:
    return f"campaign.autopause.{campaign.pk}"


def campaign_autopause_notify(*, campaign: Campaign, minutes: int) -> None:
    """The campaign paused itself (no agent available for `minutes`): tell its manager (the
    portal's problem recipients when it has none) in their language, delivered by a job with
    retries; one open row and one Bitrix24 TAG per campaign, closed when it starts again."""
    alerts.notification_raise(
        portal=campaign.portal,
        kind=KIND_AUTO_PAUSED,
        tag=campaign_autopause_tag(campaign),
        user_id=campaign.manager_user_id or None,
        message=f"campaign {campaign.pk} paused itself: no agent available for {minutes} min",
        params={"campaign": campaign.name, "n": minutes},
        severity=Notification.Severity.WARNING,
        context={"campaign": campaign.pk},
    )


def campaign_pause(*, campaign: Campaign, reason: str = "paused by a manager") -> Campaign:
    """Running → paused. Calls in progress go on; no new number is dialled."""
    updated = Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.RUNNING).update(
        state=Campaign.State.PAUSED, state_reason=reason[:255]
    )
    if not updated:
        raise CampaignStateError("only a running campaign can be paused")
    campaign.refresh_from_db()
    return campaign


def campaign_stop(*, campaign: Campaign, reason: str = "stopped by a manager") -> Campaign:
    """Any state but finished → finished; waiting items are skipped with the reason."""
    with transaction.atomic():
        updated = (
            Campaign.objects.filter(pk=campaign.pk)
            .exclude(state=Campaign.State.FINISHED)
            .update(state=Campaign.State.FINISHED, state_reason=reason[:255])
        )
        if not updated:
            raise CampaignStateError("the campaign is finished already")
        CampaignItem.objects.filter(campaign=campaign, state=CampaignItem.State.PENDING).update(
            state=CampaignItem.State.SKIPPED, reason="campaign stopped"
        )
    campaign.refresh_from_db()
    return campaign


def campaign_agent_pause(*, agent: CampaignAgent, paused: bool, reason: str = "") -> CampaignAgent:
    """Pause or resume one agent in one campaign; a call in progress is never cut."""
    agent.paused = paused
    agent.pause_reason = (reason or ("paused by the agent" if paused else ""))[:255]
    if not paused:
        agent.leg_failures = 0
    agent.save(update_fields=["paused", "pause_reason", "leg_failures"])
    if not paused:
        portal_id = Campaign.objects.values_list("portal_id", flat=True).get(pk=agent.campaign_id)
        for tag in agent_notice_tags(agent=agent):
            alerts.notification_resolve(portal=portal_id, tag=tag)
    return agent


def agent_notice_tags(*, agent: CampaignAgent) -> tuple[str, str]:
    """The agent's and the manager's tag of the "paused in this campaign" notice."""
    tag = f"campaign:{agent.campaign_id}:agent:{agent.bitrix_user_id}"
    return tag, f"{tag}:manager"


def agent_pause_notify(*, agent: CampaignAgent, campaign: Campaign, failures: int) -> None:
    """The dialer paused the agent after `failures` operator legs not answered: tell them and
    the campaign's manager (the portal's problem recipients when it has none), as the agents
    capability does for a failed status sync (integration/agents/fallback.py). One open row
    and one Bitrix24 TAG per (campaign, agent, audience): a repeat replaces the notice
    (docs/bitrix24.md §7.1); resuming closes both rows."""
    agent_tag, manager_tag = agent_notice_tags(agent=agent)
    params: dict[str, Any] = {"campaign": campaign.name, "n": failures}
    detail = (
        f"campaign {campaign.pk}: agent {agent.bitrix_user_id} did not pick up "
        f"{failures} calls in a row"
    )
    context = {"campaign": campaign.pk, "agent": agent.bitrix_user_id}
    common: dict[str, Any] = {
        "portal": campaign.portal,
        "kind": KIND_AGENT_PAUSED,
        "message": detail,
        "severity": Notification.Severity.WARNING,
        "context": context,
    }
    alerts.notification_raise(**common, tag=agent_tag, user_id=agent.bitrix_user_id, params=params)
    if campaign.manager_user_id == agent.bitrix_user_id:
        return
    state = agent_selectors.agent_for_user(portal=campaign.portal, user_id=agent.bitrix_user_id)
    name = (state.name if state is not None else "") or str(agent.bitrix_user_id)
    alerts.notification_raise(
        **common,
        tag=manager_tag,
        user_id=campaign.manager_user_id or None,
        params={**params, "name": name},
    )


def campaign_load_enqueue(*, campaign: Campaign) -> None:
    """Read the campaign's source in a job (never inside a request); the tick waits for it."""
    with transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(
            load_state=Campaign.LoadState.LOADING, load_error=""
        )
        campaign.load_state = Campaign.LoadState.LOADING
        jobs.job_enqueue(
            kind=KIND_LOAD,
            key=f"{KIND_LOAD}:{campaign.pk}:{timezone.now().timestamp():.0f}",
            portal=campaign.portal,
            subject=f"campaign {campaign.pk}",
            payload={"campaign_id": campaign.pk},
        )


def campaign_loaded(*, campaign_id: int, error: str = "") -> None:
    state = Campaign.LoadState.FAILED if error else Campaign.LoadState.LOADED
    Campaign.objects.filter(pk=campaign_id).update(load_state=state, load_error=error[:2000])
