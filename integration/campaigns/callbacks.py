"""Callbacks in the dialer (docs/campaigns.md "Callbacks"): a missed call's callback is an item
of the portal's system campaign (source CALLBACKS), assigned to the missed call's owner, at the
top priority. It never ticks by itself: the tick of any running campaign the owner dials first
claims a due callback assigned to that agent (tick.item_claim_for), then its own numbers.

Exactly once: the item is one-to-one with the FailedCall it answers (a unique column), so a
repeated missed-call job or two openings at once make one item. One charged attempt: a callback
the client does not answer stays on the missed-call list for its owner, as it always did
(docs/routing.md), and is not redialled by the machine.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from integration.calls.models import FailedCall
from integration.campaigns import services
from integration.campaigns.models import Campaign, CampaignAgent, CampaignItem

logger = logging.getLogger(__name__)

#: Above every campaign number (priority 0).
CALLBACK_PRIORITY = 100
CALLBACKS_NAME = "Callbacks"


def callbacks_campaign(*, portal: Any) -> Campaign:
    """The portal's system campaign of callbacks, created on demand (one per portal: a unique
    constraint, so two missed calls at once make one)."""
    campaign = Campaign.objects.filter(portal=portal, source=Campaign.Source.CALLBACKS).first()
    if campaign is not None:
        return campaign
    try:
        with transaction.atomic():
            return Campaign.objects.create(
                portal=portal,
                name=CALLBACKS_NAME,
                source=Campaign.Source.CALLBACKS,
                # A container: its items are dialled by other campaigns' ticks, inside their
                # windows; it has no window, agents or tick of its own.
                state=Campaign.State.RUNNING,
                state_reason="missed-call callbacks",
                max_attempts=1,
                wrap_up_s=0,
            )
    except IntegrityError:
        return Campaign.objects.get(portal=portal, source=Campaign.Source.CALLBACKS)


def dialling_campaigns(*, portal: Any, user_id: int) -> list[Campaign]:
    """The running campaigns the user is an agent of (the ones whose tick would ring them)."""
    rows = CampaignAgent.objects.filter(
        campaign__portal=portal,
        campaign__state=Campaign.State.RUNNING,
        bitrix_user_id=user_id,
    ).exclude(campaign__source=Campaign.Source.CALLBACKS)
    return [a.campaign for a in rows.select_related("campaign__portal")]


def callback_item_add(
    *, item: FailedCall, phone: str, refused: str = ""
) -> tuple[CampaignItem, bool]:
    """The callback item for `item` (created once; returns (row, created)). With `refused` it is
    kept as a skipped item with that reason: the call stays on the missed-call list only."""
    existing = CampaignItem.objects.filter(failed_call=item).first()
    if existing is not None:
        return existing, False
    campaign = callbacks_campaign(portal=item.portal)
    fields = {
        "campaign": campaign,
        "entity_type": item.crm_entity_type,
        "entity_id": item.crm_entity_id,
        "raw_phone": item.phone_number,
        "phone": phone,
        "assignee_user_id": item.owner_user_id,
        "responsible_user_id": item.owner_user_id,
        "priority": CALLBACK_PRIORITY,
        "next_at": timezone.now(),
        "state": CampaignItem.State.SKIPPED if refused else CampaignItem.State.PENDING,
        "reason": refused[:255],
    }
    try:
        with transaction.atomic():
            row = CampaignItem.objects.create(failed_call=item, **fields)
    except IntegrityError:  # opened concurrently: theirs is the one
        return CampaignItem.objects.get(failed_call=item), False
    if not refused:
        for campaign in dialling_campaigns(portal=item.portal, user_id=item.owner_user_id or 0):
            services.tick_enqueue(campaign=campaign, reason="callback")
    logger.info("callback item %s", "refused" if refused else "queued", extra={"item": row.pk})
    return row, True


def callback_items_close(*, failed_call_ids: list[int], resolution: str) -> int:
    """The missed-call items are resolved (any answered call to the number, or a person): their
    callbacks not yet dialled are not dialled. One being dialled is settled by its call."""
    if not failed_call_ids:
        return 0
    return CampaignItem.objects.filter(
        failed_call_id__in=failed_call_ids, state=CampaignItem.State.PENDING
    ).update(
        state=CampaignItem.State.SKIPPED,
        reason=f"resolved: {resolution}"[:255],
        next_at=None,
        updated_at=timezone.now(),
    )
