"""The tick: give each free, available agent of a running campaign the next due number
(docs/agents.md §5.2, engine P — progressive, one agent at a time, the operator rings first).

Safety is enforced here and in the claims, not by the tick being alone: two ticks of one campaign
may overlap (a period tick and a CALL_END wake-up), so an item is claimed by a conditional update
(under SELECT … FOR UPDATE SKIP LOCKED where the database has it) and an agent by a conditional
update of `current_attempt`. A number is therefore never dialled twice at once, and an agent never
gets two numbers.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from integration.agents import selectors as agent_selectors
from integration.agents import services as agent_services
from integration.bitrix import batch
from integration.calls import dial, failed, sync
from integration.calls.models import CallSync, FailedCall
from integration.campaigns import services, sweep
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.core.errors import IntegrationError
from integration.core.log import log_context

logger = logging.getLogger(__name__)


def campaign_agent_available(*, campaign: Campaign, agent: CampaignAgent, now: datetime) -> bool:
    """May the dialer give this agent a number now? The agents capability's presence predicate
    (docs/agents.md §5.1, §5.2): only an AVAILABLE agent with a fresh reading — never one on a
    break, with the work day not open, PAUSED(sync_failed), offline, on a live call, in wrap-up
    or without a line; an agent with no presence row yet (never polled) is not available.

    The campaign's own rules (paused here, its wrap-up, one attempt at a time) are the caller's.
    """
    state = agent_selectors.agent_for_user(portal=campaign.portal, user_id=agent.bitrix_user_id)
    if state is None:
        return False
    state.portal = campaign.portal
    return agent_services.agent_can_take_dialer_call(agent=state, now=now)


def in_window(*, campaign: Campaign, now: datetime) -> bool:
    """Is it calling time in the clients' timezone? A window may span midnight (22:00-02:00)."""
    local = now.astimezone(ZoneInfo(campaign.timezone)).time()
    start, end = campaign.window_start, campaign.window_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def _due_q(campaign: Campaign, now: datetime) -> Q:
    return Q(
        campaign=campaign,
        state=CampaignItem.State.PENDING,
        attempts__lt=campaign.max_attempts,
    ) & (Q(next_at__isnull=True) | Q(next_at__lte=now))


def item_claim(*, campaign: Campaign, now: datetime) -> CampaignItem | None:
    """Take the next due item for dialling (state → calling) or None. Concurrency-safe."""
    return _claim(_due_q(campaign, now), now)


def _callback_due_q(callbacks: Campaign, agent: CampaignAgent, now: datetime) -> Q:
    return (
        _due_q(callbacks, now)
        & Q(assignee_user_id=agent.bitrix_user_id)
        # Belt and braces beside callbacks.callback_items_close: a callback already made
        # (any answered call to the number) is never dialled.
        & Q(
            failed_call__in=FailedCall.objects.filter(
                portal_id=callbacks.portal_id, state__in=failed.OPEN_STATES
            ).values("pk")
        )
    )


def callbacks_for(campaign: Campaign) -> Campaign | None:
    """The portal's callbacks campaign, if a callback was ever queued (docs/campaigns.md)."""
    return (
        Campaign.objects.filter(portal_id=campaign.portal_id, source=Campaign.Source.CALLBACKS)
        .select_related("portal")
        .first()
    )


def item_claim_for(
    *,
    campaign: Campaign,
    agent: CampaignAgent,
    now: datetime,
    callbacks: Campaign | None = None,
) -> CampaignItem | None:
    """The next number for this agent: a due callback assigned to them first (the portal's
    callbacks campaign, docs/campaigns.md "Callbacks"), else the campaign's next due item.
    `callbacks` is callbacks_for(campaign), read once per round by the caller."""
    if callbacks is not None:
        item = _claim(_callback_due_q(callbacks, agent, now), now)
        if item is not None:
            item.campaign = callbacks
            return item
    return item_claim(campaign=campaign, now=now)


def _claim(due: Q, now: datetime) -> CampaignItem | None:
    for _ in range(5):
        with transaction.atomic():
            candidates = CampaignItem.objects.filter(due).order_by(
                F("priority").desc(), F("next_at").asc(nulls_first=True), "pk"
            )
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            item = candidates.first()
            if item is None:
                return None
            # The conditional update is the claim on SQLite (no row locks) and a guard on both.
            won = CampaignItem.objects.filter(due, pk=item.pk).update(
                state=CampaignItem.State.CALLING, updated_at=now
            )
            if won:
                item.state = CampaignItem.State.CALLING
                return item
    return None


def _release(item: CampaignItem, *, reason: str = "") -> None:
    CampaignItem.objects.filter(pk=item.pk, state=CampaignItem.State.CALLING).update(
        state=CampaignItem.State.PENDING, reason=reason[:255]
    )


def _skip(item: CampaignItem, reason: str) -> None:
    CampaignItem.objects.filter(pk=item.pk).update(
        state=CampaignItem.State.SKIPPED, reason=reason[:255], next_at=None
    )


def items_recheck(*, campaign: Campaign, items: list[CampaignItem]) -> dict[int, str]:
    """Ask Bitrix24 about every claimed item in one batch; item id → why it must not be dialled.

    Still there (crm.item.get NOT_FOUND → deleted), stage still allowed (source "stages").
    A whole-batch failure raises (the items go back to the queue).
    """
    checked = [i for i in items if i.entity_type_id and i.entity_id]
    if not checked:
        return {}
    commands = {
        str(i.pk): ("crm.item.get", {"entityTypeId": i.entity_type_id, "id": i.entity_id})
        for i in checked
    }
    answer = batch.batch(campaign.portal, commands)
    stages = set((campaign.source_params or {}).get("stages") or [])
    refused: dict[int, str] = {}
    for item in checked:
        error = answer.errors.get(str(item.pk))
        if error:
            code = str(error.get("error") or "")
            refused[item.pk] = (
                "deleted in Bitrix24" if code == "NOT_FOUND" else f"Bitrix24 refused: {code}"
            )
            continue
        found = (answer.results.get(str(item.pk)) or {}).get("item") or {}
        if stages and found.get("stageId") not in stages:
            refused[item.pk] = f"moved to stage {found.get('stageId')}"
    return refused


def _agent_free(agent: CampaignAgent, campaign: Campaign, now: datetime) -> bool:
    if agent.paused or agent.current_attempt_id is not None:
        return False
    # Wrap-up after the agent's last campaign call.
    return not (agent.free_since and agent.free_since + timedelta(seconds=campaign.wrap_up_s) > now)


def _agent_take(agent: CampaignAgent, attempt: Attempt) -> bool:
    return bool(
        CampaignAgent.objects.filter(
            pk=agent.pk, current_attempt__isnull=True, paused=False
        ).update(current_attempt=attempt, calls=F("calls") + 1)
    )


def attempt_dial(*, campaign: Campaign, agent: CampaignAgent, item: CampaignItem) -> Attempt | None:
    """Start one attempt: a CallSync of origin campaign and the existing call.dial job."""
    with transaction.atomic():
        attempt = Attempt.objects.create(
            item=item, number=item.attempts + 1, agent_user_id=agent.bitrix_user_id, agent=agent
        )
        if not _agent_take(agent, attempt):
            attempt.delete()
            _release(item)
            return None
        row = CallSync.objects.create(
            portal=campaign.portal,
            origin=CallSync.Origin.CAMPAIGN,
            user_id=agent.bitrix_user_id,
            phone_number=item.phone,
            line_number=settings.BITRIX24_LINE_NUMBER,
            crm_entity_type=item.entity_type if item.entity_type in _CRM_TYPES else "",
            crm_entity_id=item.entity_id if item.entity_type in _CRM_TYPES else None,
            dial_meta=f"cmp:{campaign.pk}:{item.pk}:{attempt.pk}",
            call_list_id=item.call_list_id,
        )
        Attempt.objects.filter(pk=attempt.pk).update(call_sync=row)
        attempt.call_sync = row
        sync.job_enqueue(dial.KIND_DIAL, row)
    logger.info("campaign dial", extra={"item": item.pk, "attempt": attempt.pk})
    return attempt


_CRM_TYPES = {"LEAD", "DEAL", "CONTACT", "COMPANY"}


def _no_agent(campaign: Campaign, now: datetime) -> str | None:
    """Nobody could take a call: remember since when; past the limit pause and tell the manager."""
    if campaign.no_agent_since is None:
        Campaign.objects.filter(pk=campaign.pk).update(no_agent_since=now)
        return None
    if now - campaign.no_agent_since < timedelta(seconds=campaign.auto_pause_after_s):
        return None
    minutes = round(campaign.auto_pause_after_s / 60)
    reason = f"no agent available for {minutes} min"
    paused = Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.RUNNING).update(
        state=Campaign.State.PAUSED, state_reason=reason
    )
    if paused:
        services.campaign_autopause_notify(campaign=campaign, minutes=minutes)
    return reason


def _finish_if_done(campaign: Campaign) -> bool:
    open_items = CampaignItem.objects.filter(
        campaign=campaign, state__in=[CampaignItem.State.PENDING, CampaignItem.State.CALLING]
    )
    exhausted = open_items.filter(
        state=CampaignItem.State.PENDING, attempts__gte=campaign.max_attempts
    )
    exhausted.update(state=CampaignItem.State.FAILED, reason="max attempts reached")
    if open_items.exists():
        return False
    if campaign.source == Campaign.Source.MANUAL:
        # Numbers come one by one (the "Add to campaign" robot, CSV uploads): out of numbers is
        # waiting for the next, not done; the manager stops it (docs/campaigns.md, "The robot").
        return False
    return bool(
        Campaign.objects.filter(pk=campaign.pk, state=Campaign.State.RUNNING).update(
            state=Campaign.State.FINISHED, state_reason=_finished_reason(campaign)
        )
    )


def _finished_reason(campaign: Campaign) -> str:
    """Why a loaded campaign with nothing left to dial finished. A source that gave no number
    to dial (a filter matching nothing, an empty list, items without phones) is not "every
    number has a final outcome" (issue 14 "Bad input", docs/campaigns.md)."""
    if CampaignItem.objects.filter(campaign=campaign).exclude(phone="").exists():
        return "every number has a final outcome"
    if campaign.load_state == Campaign.LoadState.FAILED:
        return "the numbers could not be loaded"
    return "the source had no numbers to dial"


def _waiting_for_numbers(campaign: Campaign) -> bool:
    return not CampaignItem.objects.filter(
        campaign=campaign, state__in=[CampaignItem.State.PENDING, CampaignItem.State.CALLING]
    ).exists()


def campaign_tick(*, campaign_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Job `campaign.tick`: one round of dialling, then the next tick is scheduled.

    Returns what it did (dialled, skipped, why it stopped) for the job row.
    """
    now = now or timezone.now()
    campaign = Campaign.objects.select_related("portal").get(pk=campaign_id)
    # Earlier rounds' rows (this one is still running, so it is never among them).
    services.ticks_prune(campaign_id=campaign.pk)
    with log_context(portal=campaign.portal.member_id):
        if campaign.state != Campaign.State.RUNNING:
            return {"skipped": f"campaign {campaign.state}"}
        if campaign.source == Campaign.Source.CALLBACKS:
            # Its items are dialled by the ticks of the campaigns their owners dial.
            return {"skipped": "callbacks have no tick of their own"}
        if load_pending(campaign):
            services.tick_enqueue(campaign=campaign, delay_s=settings.CAMPAIGN_TICK_S)
            return {"skipped": "still loading"}
        swept = sweep.attempts_sweep(campaign=campaign, now=now)
        result = _round(campaign, now)
        if any(swept.values()):
            result["swept"] = swept
        if _finish_if_done(campaign):
            result["finished"] = True
            return result
        if (
            result.get("dialled") == 0
            and not result.get("waiting")
            and _waiting_for_numbers(campaign)
        ):
            result["waiting"] = "waiting for numbers"
        campaign.refresh_from_db(fields=["state"])
        if campaign.state == Campaign.State.RUNNING:
            services.tick_enqueue(campaign=campaign, delay_s=settings.CAMPAIGN_TICK_S)
    return result


def load_pending(campaign: Campaign) -> bool:
    return campaign.load_state == Campaign.LoadState.LOADING


def _round(campaign: Campaign, now: datetime) -> dict[str, Any]:
    if not in_window(campaign=campaign, now=now):
        return {"dialled": 0, "waiting": "outside the calling window"}
    agents = list(CampaignAgent.objects.filter(campaign=campaign).order_by("free_since", "pk"))
    available = [a for a in agents if campaign_agent_available(campaign=campaign, agent=a, now=now)]
    usable = [a for a in available if not a.paused]
    if not usable and not any(a.current_attempt_id for a in agents):
        reason = _no_agent(campaign, now)
        return {"dialled": 0, "waiting": reason or "no agent available"}
    if usable and campaign.no_agent_since is not None:
        Campaign.objects.filter(pk=campaign.pk).update(no_agent_since=None)
    free = [a for a in usable if _agent_free(a, campaign, now)]
    pairs: list[tuple[CampaignAgent, CampaignItem]] = []
    callbacks = callbacks_for(campaign) if free else None
    for agent in free:
        item = item_claim_for(campaign=campaign, agent=agent, now=now, callbacks=callbacks)
        if item is not None:
            pairs.append((agent, item))
    if not pairs:
        return {"dialled": 0}
    try:
        refused = items_recheck(campaign=campaign, items=[i for _, i in pairs])
    except IntegrationError as exc:
        for _, item in pairs:
            _release(item, reason=f"Bitrix24 re-check failed: {exc}")
        raise
    dialled = skipped = 0
    blocked = set(campaign.do_not_call or [])
    for agent, item in pairs:
        # A callback answers the client's own call: this campaign's do-not-call list is not its.
        listed = item.campaign_id == campaign.pk and item.phone in blocked
        why = refused.get(item.pk) or ("on the do-not-call list" if listed else "")
        if why:
            _skip(item, why)
            skipped += 1
            continue
        if attempt_dial(campaign=campaign, agent=agent, item=item) is not None:
            dialled += 1
    return {"dialled": dialled, "skipped": skipped}
