"""Telling Bitrix24 about calls exactly once: the CallSync state machine, register, follow-ups.

`register` and `finish` are not idempotent (docs/bitrix24.md §5.2-§5.3), so every CallSync carries a
small state machine (docs/pipeline.md):

- `stage` only moves forward, by conditional UPDATEs that also require our claim;
- a job owns a row while it holds the claim (`claim_token` + `claimed_until`); a dead worker's
  claim expires after CALL_DRAIN_CLAIM_S, longer than one request can take;
- before a non-idempotent request goes out, `sent_op` is committed; a definite answer clears it.
  A later attempt that finds `sent_op` set checks Bitrix24 before repeating: a finished call is
  looked up by its activity (register+finish), a re-register of an active call returns the same
  CALL_ID (dedup by EXTERNAL_CALL_ID), and "Call is not found" on a finish of a call we
  registered means an earlier finish went through.

This module holds the row's claim, what register needs, the recording of each answer and the
single-call register of a ringing call; calls/drain.py batches register+finish of ended calls,
calls/followups.py runs the steps after a finish (timeline comment, card).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bitrixapp.models import Portal, PortalOptions, portal_options
from integration import jobs
from integration.bitrix import telephony
from integration.calls import chain, statuses
from integration.calls.models import Call, CallSync
from integration.core import inputs
from integration.core.errors import (
    AuthExpiredError,
    IntegrationError,
    PausedError,
    PermanentError,
    RateLimitedError,
)
from integration.core.log import log_context
from integration.unitalk import selectors as unitalk_selectors

logger = logging.getLogger(__name__)

KIND_SYNC = "call.sync"
KIND_REGISTER = "call.register"
KIND_DETAILS = "call.details"
KIND_RECORDING = "call.recording"
KIND_MISSED = "call.missed"
KIND_CARD = "call.card"

OP_REGISTER = "register"
OP_REGISTER_FINISH = "register_finish"
OP_FINISH = "finish"

OPEN_STAGES = (CallSync.Stage.NEW, CallSync.Stage.DIALING, CallSync.Stage.REGISTERED)
DONE_STAGES = (CallSync.Stage.FINISHED, CallSync.Stage.RECORDED)


class SyncBusy(RateLimitedError):
    """Another job holds this call, or a request we gave up on may still be running: look again
    shortly (a fixed short wait, not exponential backoff: nothing is failing)."""


def _job_key(kind: str, sync: CallSync) -> str:
    return f"{kind}:{sync.pk}"


def job_enqueue(
    kind: str,
    sync: CallSync,
    *,
    delay_s: float = 0,
    run_here: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """One job per (call, step): enqueueing the same step again is a no-op. A background drain
    may be kept unpublished while the portal's chain will reach it (calls/chain.py)."""
    payload: dict[str, Any] = {"sync_id": sync.pk, **(extra or {})}
    publish = True
    if kind == KIND_SYNC:
        publish = chain.drain_publish_needed(portal_id=sync.portal_id)
        payload[chain.HELD] = not publish
    jobs.job_enqueue(
        kind=kind,
        key=_job_key(kind, sync),
        portal=sync.portal,
        subject=f"call-sync:{sync.pk}",
        payload=payload,
        delay_s=delay_s,
        publish=publish,
        run_here=run_here,
    )


def call_user(*, portal: Portal, call: Call | None) -> int | None:
    """Bitrix24 user of a call: operator mapping of its line, else the default, else installer."""
    if call is not None and call.operator_line:
        user = unitalk_selectors.operator_user_for_line(portal, call.operator_line)
        if user:
            return int(user)
    options = portal_options(portal)
    return options.default_user_id or portal.installed_by_user_id


def call_inbound(call: Call) -> bool:
    return call.direction in (Call.Direction.IN, Call.Direction.MISSED)


def phone_digits(value: str) -> str:
    return "".join(ch for ch in value if ch in "0123456789")


def ready_q() -> Q:
    """Rows that have everything `finish` needs and are not finished yet."""
    return Q(stage__in=OPEN_STAGES) & (Q(call__ended=True) | ~Q(status_code=""))


def free_q(now: Any) -> Q:
    return Q(claim_token="") | Q(claimed_until__lt=now)


def claim(pk: int, token: str) -> bool:
    """Take the row if it is free and still open. Only the row's own columns are in the WHERE:
    a condition on a joined table makes Django emit `WHERE id IN (SELECT ...)`, and PostgreSQL
    re-checks a concurrently updated row against the outer WHERE only, so two workers could
    both win the claim."""
    if not CallSync.objects.filter(ready_q(), pk=pk).exists():
        return False
    now = timezone.now()
    lease = timedelta(seconds=settings.CALL_DRAIN_CLAIM_S)
    return bool(
        CallSync.objects.filter(free_q(now), pk=pk, stage__in=OPEN_STAGES).update(
            claim_token=token, claimed_until=now + lease, updated_at=now
        )
    )


def release(pks: list[int], token: str) -> None:
    CallSync.objects.filter(pk__in=pks, claim_token=token).update(
        claim_token="", claimed_until=None
    )


# --- the state machine's steps ---------------------------------------------------------------


def prepare(sync: CallSync, *, portal: Portal, users: dict[str, int | None] | None = None) -> None:
    """Fill what register needs once, so every retry sends identical parameters (dedup)."""
    call = sync.call
    updates: dict[str, Any] = {}
    if not sync.user_id:
        line = call.operator_line if call is not None else ""
        if users is None or line not in users:
            user = call_user(portal=portal, call=call)
            if users is not None:
                users[line] = user
        updates["user_id"] = users[line] if users is not None else user
    if not sync.line_number:
        updates["line_number"] = settings.BITRIX24_LINE_NUMBER
    if call is not None and not sync.phone_number:
        updates["phone_number"] = call.client_number
    if call is not None and not sync.call_start_sent:
        start = call.started_at or call.created_at
        updates["call_start_sent"] = start.replace(microsecond=0).isoformat()
    if updates:
        CallSync.objects.filter(pk=sync.pk).update(**updates)
        for name, value in updates.items():
            setattr(sync, name, value)


def register_links(sync: CallSync) -> dict[str, Any]:
    """What register says about where the call belongs: the call list, and for a campaign dial
    the CRM item it was dialled for (a call seen at Unitalk is matched by Bitrix24 itself)."""
    links: dict[str, Any] = {"call_list_id": sync.call_list_id}
    if sync.origin == CallSync.Origin.CAMPAIGN and sync.crm_entity_id:
        links |= {"crm_entity_type": sync.crm_entity_type, "crm_entity_id": sync.crm_entity_id}
    return links


def record_registered(sync: CallSync, result: dict[str, Any]) -> None:
    now = timezone.now()
    entity_id = result.get("CRM_ENTITY_ID")
    updates: dict[str, Any] = {
        "bitrix_call_id": str(result["CALL_ID"]),
        "registered_at": now,
        "updated_at": now,
    }
    entity_id = inputs.positive_id_or_none(entity_id)
    if result.get("CRM_ENTITY_TYPE") and entity_id:
        updates |= {"crm_entity_type": result["CRM_ENTITY_TYPE"], "crm_entity_id": entity_id}
    if sync.bitrix_call_id:
        return  # known already (a click-to-call, or an earlier attempt recorded it)
    early = (CallSync.Stage.NEW, CallSync.Stage.DIALING)
    stage = CallSync.Stage.REGISTERED if sync.stage in early else sync.stage
    CallSync.objects.filter(pk=sync.pk, bitrix_call_id__isnull=True).update(stage=stage, **updates)
    sync.stage = stage
    for name, value in updates.items():
        setattr(sync, name, value)


def record_finished(
    sync: CallSync, result: dict[str, Any], options: PortalOptions | None = None
) -> None:
    now = timezone.now()
    activity = result.get("CRM_ACTIVITY_ID")
    if not sync.status_code and sync.call is not None and sync.call.ended:
        # Finished by a path that built no plan (a lost batch found done): same table.
        sync.status_code = statuses.status_code_for(
            state=sync.call.state, inbound=call_inbound(sync.call)
        )
    fields = {
        "stage": CallSync.Stage.FINISHED,
        "finished_at": now,
        "crm_activity_id": inputs.positive_id_or_none(activity),
        "status_code": sync.status_code,
        "sent_op": "",
        "last_error": "",
        "updated_at": now,
    }
    updated = CallSync.objects.filter(pk=sync.pk, stage__in=OPEN_STAGES).update(**fields)
    for name, value in fields.items():
        setattr(sync, name, value)
    if updated:
        logger.info("call finished in Bitrix24", extra={"status_code": sync.status_code})
        followups_enqueue(sync=sync, options=options)


def record_error(sync: CallSync, error: IntegrationError) -> None:
    CallSync.objects.filter(pk=sync.pk).update(last_error=str(error)[:2000])
    sync.last_error = str(error)[:2000]


def definitely_not_sent(error: Exception) -> bool:
    """Errors that come with an answer saying the request was not carried out."""
    return isinstance(error, RateLimitedError | AuthExpiredError | PausedError | PermanentError)


def register_run(*, sync_id: int) -> dict[str, Any]:
    """Job `call.register`: register a call that is still ringing, so the card can pop up.

    Safe to repeat while the call is active (register dedups on EXTERNAL_CALL_ID). Once the call
    ended, `call.sync` registers and finishes it in one go instead.
    """
    sync = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    portal = sync.portal
    with log_context(call=sync.pk):
        if sync.bitrix_call_id or sync.stage not in (CallSync.Stage.NEW,) or sync.call is None:
            return {"skipped": "registered or past it"}
        if sync.call.ended:
            return {"skipped": "ended: call.sync registers and finishes it"}
        token = uuid.uuid4().hex
        now = timezone.now()
        lease = timedelta(seconds=settings.CALL_DRAIN_CLAIM_S)
        if not CallSync.objects.filter(
            free_q(now), pk=sync.pk, stage=CallSync.Stage.NEW, bitrix_call_id__isnull=True
        ).update(claim_token=token, claimed_until=now + lease):
            raise SyncBusy("another job holds this call", retry_after=2.0)
        try:
            prepare(sync, portal=portal)
            options = portal_options(portal)
            call = sync.call
            CallSync.objects.filter(pk=sync.pk).update(sent_op=OP_REGISTER, sent_at=now)
            try:
                result = telephony.register(
                    portal,
                    user_id=sync.user_id or 0,
                    phone_number=sync.phone_number,
                    call_type=telephony.TYPE_INCOMING
                    if call_inbound(call)
                    else telephony.TYPE_OUTGOING,
                    external_call_id=call.unitalk_call_id,
                    line_number=sync.line_number,
                    call_start=sync.call_start_sent,
                    crm_create=options.create_leads,
                    show=options.card_mode == options.CardMode.ON_RING,
                    **register_links(sync),
                )
            except IntegrationError as exc:
                if definitely_not_sent(exc):
                    CallSync.objects.filter(pk=sync.pk).update(sent_op="")
                raise
            CallSync.objects.filter(pk=sync.pk).update(sent_op="")
            record_registered(sync, result)
        finally:
            release([sync.pk], token)
    return {"call_id": sync.bitrix_call_id}


def followups_enqueue(*, sync: CallSync, options: PortalOptions | None = None) -> None:
    """Details, recording, missed-call handling: each its own job, keyed by (call, step)."""
    from integration.calls import failed

    call = sync.call
    if sync.crm_entity_type and sync.crm_entity_id and call is not None:
        job_enqueue(KIND_DETAILS, sync)
    else:
        # No CRM entity, no comment: record it here instead of a message that only does this.
        CallSync.objects.filter(pk=sync.pk, details_stored_at__isnull=True).update(
            details_stored_at=timezone.now()
        )
    if call is None:
        return
    options = options or portal_options(sync.portal)
    answered = sync.status_code == statuses.SUCCESS
    if answered and call.recording_url and options.recordings_to_drive:
        job_enqueue(KIND_RECORDING, sync)
    if call_inbound(call) and sync.status_code == statuses.MISSED:
        job_enqueue(KIND_MISSED, sync)
    if answered and not call_inbound(call) and sync.phone_number:
        # An answered outgoing call reached the number: its missed calls were called back.
        failed.missed_calls_resolve_for_number(
            portal=sync.portal,
            phone_number=phone_digits(sync.phone_number),
            resolution=f"called back (call {sync.pk})",
        )
