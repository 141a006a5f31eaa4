"""The steps after a finish that run as jobs of their own: the timeline comment, the call card,
and the reason kept on the row when a call's sync job dies (docs/pipeline.md).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from integration.bitrix import crm, telephony
from integration.calls import takeover
from integration.calls.models import CallSync
from integration.calls.sync import OPEN_STAGES, SyncBusy, call_inbound


def details_store(*, sync_id: int) -> dict[str, Any]:
    """Job `call.details`: the call's facts on the CRM entity's timeline (once per call)."""
    sync = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    if sync.details_stored_at:
        return {"skipped": "stored"}
    call = sync.call
    comment = ""
    if sync.crm_entity_type and sync.crm_entity_id and call is not None:
        direction = "Incoming" if call_inbound(call) else "Outgoing"
        comment = (
            f"{direction} call via Unitalk {sync.phone_number}: status {sync.status_code}"
            f" ({call.state or 'n/a'}), talk {call.talk_seconds or 0} s,"
            f" line {call.operator_line or '-'}, Unitalk id {call.unitalk_call_id}"
        )
        # Not idempotent either, but a duplicate comment is harmless, a lost one is not.
        crm.timeline_comment_add(
            sync.portal,
            entity_type=sync.crm_entity_type,
            entity_id=sync.crm_entity_id,
            comment=comment,
        )
    CallSync.objects.filter(pk=sync.pk).update(details_stored_at=timezone.now())
    return {"comment": bool(comment)}


def sync_failed(*, sync_id: int, error: str) -> CallSync:
    """A call's sync job died: keep the reason on the row (pages show it)."""
    CallSync.objects.filter(pk=sync_id).update(last_error=error[:2000])
    return CallSync.objects.select_related("portal", "call").get(pk=sync_id)


def card_show(*, sync_id: int) -> dict[str, Any]:
    """Job `call.card`: open the call card on answer (card mode "answer"), or for the other
    colleagues present when fallback routing handed a ringing call on (calls/takeover.py)."""
    row = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    if row.stage not in OPEN_STAGES or (row.call is not None and row.call.ended):
        return {"skipped": "call is over"}
    if not row.bitrix_call_id:
        raise SyncBusy("call not registered yet", retry_after=2.0)
    users = takeover.card_users(row=row) or [0]
    shown = telephony.card_show(row.portal, call_id=row.bitrix_call_id, user_ids=users)
    return {"shown": shown}
