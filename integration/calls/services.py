"""Services of the call pipeline: the entry point the Unitalk side calls.

The steps live in their own modules: dial.py (click-to-call, callbacks), sync.py (the CallSync
state machine, register), drain.py (batched register+finish), followups.py (details, card),
recording.py, missed.py; flow.py registers their jobs.
"""

from __future__ import annotations

import logging

from bitrixapp.models import PortalOptions, portal_options
from integration.calls import sync, takeover
from integration.calls.models import Call, CallSync
from integration.core.log import log_context

logger = logging.getLogger(__name__)


def call_sync_for_call(*, call: Call) -> CallSync | None:
    """The CallSync of a Unitalk call: the click-to-call whose CALL_ID it echoes in `meta`, or a
    new row of origin "unitalk". None for calls between inner lines (not a CRM matter)."""
    existing = CallSync.objects.filter(call=call).first()
    if existing is not None:
        return existing
    if call.direction == Call.Direction.INNER:
        return None
    if call.meta:
        linked = CallSync.objects.filter(
            portal_id=call.portal_id, bitrix_call_id=call.meta, call__isnull=True
        ).update(call=call)
        if linked:
            return CallSync.objects.get(call=call)
        linked = CallSync.objects.filter(
            portal_id=call.portal_id, dial_meta=call.meta, call__isnull=True
        ).update(call=call)
        if linked:
            return CallSync.objects.get(call=call)
    row, _ = CallSync.objects.get_or_create(
        call=call,
        defaults={
            "portal_id": call.portal_id,
            "origin": CallSync.Origin.UNITALK,
            "phone_number": call.client_number,
        },
    )
    return row


def call_changed(*, call: Call, event: str) -> None:
    """A call row was created or changed by Unitalk data: sync it onward.

    Contract: called after the change is saved (inside the worker's transaction, so enqueue with
    `jobs.job_enqueue`, which dispatches after commit), once per merged webhook event and once
    per call completed by reconciliation. `event` is the Unitalk event name (CALL_NEW,
    CALL_REDIRECT, CALL_ANSWER, CALL_END) or "RECONCILED". It may be called more than once for
    the same state (a webhook after reconciliation), so the implementation must be idempotent:
    jobs are keyed by (step, CallSync id). Does not raise for a call it does not handle.
    """
    row = call_sync_for_call(call=call)
    if row is None:
        return
    with log_context(call=row.pk):
        if call.ended:
            if row.stage in sync.OPEN_STAGES and not takeover.click_leg_failed(row=row, call=call):
                # A live call's end is finished in this worker right away (interactive lane).
                sync.job_enqueue(sync.KIND_SYNC, row, run_here=True)
            return
        # A campaign dial is unknown to Bitrix24 until we register it, like a call seen at Unitalk.
        registers = (CallSync.Origin.UNITALK, CallSync.Origin.CAMPAIGN)
        # Registered (the ringing card) and shown in this worker right away, like the end: a
        # message each was a hop, and the call's end waited behind it (docs/pipeline.md, "Lanes").
        if row.origin in registers and row.stage == CallSync.Stage.NEW:
            # The line's user may be away: fallback routing picks who gets the card.
            takeover.inbound_user_pick(row=row, call=call)
            sync.job_enqueue(sync.KIND_REGISTER, row, run_here=True)
            options = portal_options(row.portal)
            # Registering shows the card to the call's user; colleagues present see it too.
            if options.card_mode == PortalOptions.CardMode.ON_RING and (
                len(takeover.card_users(row=row)) > 1
            ):
                sync.job_enqueue(sync.KIND_CARD, row, run_here=True)
        if call.status == Call.Status.ANSWERED:
            options = portal_options(row.portal)
            if options.card_mode == PortalOptions.CardMode.ON_ANSWER:
                sync.job_enqueue(sync.KIND_CARD, row, run_here=True)
        logger.info("call changed", extra={"event": event, "stage": row.stage})
