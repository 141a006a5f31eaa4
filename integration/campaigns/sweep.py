"""Attempts whose end we did not hear about (docs/agents.md §5.2, "Webhook lost" and "Possible
duplicate directCall after a lost answer").

The tick runs this first: an attempt whose Unitalk call ended (merged from history/get by
reconciliation, so no webhook job settled) is settled now; an attempt with no Unitalk call after
CAMPAIGN_CALLING_STALE_S is looked up in Unitalk history by its `meta` before the number may be
dialled again — found: reconciliation merges it and the next sweep settles it; not found: the
dial never happened, the number goes back to the queue without charging an attempt.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q

from integration import jobs
from integration.calls import reconcile
from integration.calls.models import Call, CallSync
from integration.campaigns import outcomes
from integration.campaigns.models import Attempt, Campaign, CampaignItem
from integration.core.errors import IntegrationError
from integration.unitalk import client as unitalk_client
from integration.unitalk import names
from integration.unitalk import services as unitalk_services

logger = logging.getLogger(__name__)


def _history_has_meta(campaign: Campaign, meta: str, since: datetime, now: datetime) -> bool:
    """Is a call with this `meta` in Unitalk's history since `since`? Raises the client's errors."""
    connection = unitalk_services.connection_for_work(portal=campaign.portal)
    zone = ZoneInfo(connection.timezone)
    history = unitalk_client.history_get(
        unitalk_services.connection_credentials(connection=connection),
        date_from=(since - timedelta(minutes=1))
        .astimezone(zone)
        .replace(tzinfo=None, microsecond=0),
        date_to=now.astimezone(zone).replace(tzinfo=None, microsecond=0),
    )
    return any(str(row.get(names.FIELD_META) or "") == meta for row in history)


def attempts_sweep(*, campaign: Campaign, now: datetime) -> dict[str, int]:
    """Settle or requeue live attempts whose outcome got lost. Returns counts."""
    settled = requeued = 0
    stale_before = now - timedelta(seconds=settings.CAMPAIGN_CALLING_STALE_S)
    # Callbacks this campaign's agents dialled belong to the callbacks campaign, which has no
    # tick of its own (docs/campaigns.md "Callbacks"): the dialling campaign sweeps them.
    live = Attempt.objects.filter(
        Q(item__campaign=campaign) | Q(agent__campaign=campaign), outcome=""
    ).select_related("call_sync__call", "item")
    for attempt in live:
        row = attempt.call_sync
        call = row.call if row is not None else None
        if call is None and row is not None and row.dial_meta:
            call = Call.objects.filter(portal_id=row.portal_id, meta=row.dial_meta).first()
            if call is not None:
                CallSync.objects.filter(pk=row.pk, call__isnull=True).update(call=call)
                call.refresh_from_db()
        if call is not None:
            if call.ended:
                settled += int(
                    outcomes.attempt_finish(
                        attempt_id=attempt.pk, outcome=outcomes.call_outcome(call)
                    )
                )
            continue
        if attempt.started_at >= stale_before:
            continue
        meta = row.dial_meta if row is not None else ""
        try:
            placed = bool(meta) and _history_has_meta(campaign, meta, attempt.started_at, now)
        except IntegrationError as exc:
            logger.warning("history check of a lost dial failed: %s", exc)
            continue  # in doubt: never dial again before Unitalk has answered
        if placed:
            jobs.job_enqueue(
                kind=reconcile.KIND_RECONCILE,
                key=f"{reconcile.KIND_RECONCILE}:{campaign.portal_id}:cmp:{int(now.timestamp() // 60)}",
                portal=campaign.portal,
                subject="campaign dial found in history",
            )
            continue
        requeued += int(
            outcomes.attempt_finish(attempt_id=attempt.pk, outcome=Attempt.Outcome.DIAL_FAILED)
        )
    return {"settled": settled, "requeued": requeued, "released": claims_release(campaign, now)}


def claims_release(campaign: Campaign, now: datetime) -> int:
    """Numbers a tick claimed ("calling") but never dialled — the worker died between the claim
    and the attempt, which commit apart — go back to the queue after CAMPAIGN_CLAIM_STALE_S.
    Without this they stayed "calling" forever and the campaign never finished."""
    stale_before = now - timedelta(seconds=settings.CAMPAIGN_CLAIM_STALE_S)
    # The portal's callbacks are claimed by every campaign's tick, so each tick may free them.
    mine = Q(campaign=campaign) | Q(
        campaign__portal_id=campaign.portal_id, campaign__source=Campaign.Source.CALLBACKS
    )
    return (
        CampaignItem.objects.filter(
            mine, state=CampaignItem.State.CALLING, updated_at__lt=stale_before
        )
        .exclude(attempt_set__outcome="")
        .update(state=CampaignItem.State.PENDING, reason="claimed but not dialled", updated_at=now)
    )
