"""Telling Bitrix24 about calls exactly once: register, finish, and the drain that batches them.

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

Throughput: one `batch` carries register+finish for up to CALL_DRAIN_BATCH calls (50 commands,
one request of the portal's leaky bucket), so a backlog drains at ~25 calls per request.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bitrixapp.models import Portal, PortalOptions, portal_options
from integration import jobs
from integration.bitrix import crm, telephony
from integration.bitrix import errors as bx_errors
from integration.bitrix.batch import BatchResult
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


# --- who, what --------------------------------------------------------------------------------


def call_user(*, portal: Portal, call: Call | None) -> int | None:
    """Bitrix24 user of a call: operator mapping of its line, else the default, else installer."""
    if call is not None and call.operator_line:
        user = unitalk_selectors.operator_user_for_line(portal, call.operator_line)
        if user:
            return int(user)
    options = portal_options(portal)
    return options.default_user_id or portal.installed_by_user_id


def _inbound(call: Call) -> bool:
    return call.direction in (Call.Direction.IN, Call.Direction.MISSED)


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch in "0123456789")


def ready_q() -> Q:
    """Rows that have everything `finish` needs and are not finished yet."""
    return Q(stage__in=OPEN_STAGES) & (Q(call__ended=True) | ~Q(status_code=""))


def _free_q(now: Any) -> Q:
    return Q(claim_token="") | Q(claimed_until__lt=now)


def _claim(pk: int, token: str) -> bool:
    """Take the row if it is free and still open. Only the row's own columns are in the WHERE:
    a condition on a joined table makes Django emit `WHERE id IN (SELECT ...)`, and PostgreSQL
    re-checks a concurrently updated row against the outer WHERE only, so two workers could
    both win the claim."""
    if not CallSync.objects.filter(ready_q(), pk=pk).exists():
        return False
    now = timezone.now()
    lease = timedelta(seconds=settings.CALL_DRAIN_CLAIM_S)
    return bool(
        CallSync.objects.filter(_free_q(now), pk=pk, stage__in=OPEN_STAGES).update(
            claim_token=token, claimed_until=now + lease, updated_at=now
        )
    )


def _release(pks: list[int], token: str) -> None:
    CallSync.objects.filter(pk__in=pks, claim_token=token).update(
        claim_token="", claimed_until=None
    )


# --- the drain --------------------------------------------------------------------------------


@dataclass
class _Plan:
    sync: CallSync
    op: str
    commands: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def _plan(sync: CallSync, *, portal: Portal, options: PortalOptions | None = None) -> _Plan:
    """The commands that take this call to FINISHED from where it stands."""
    call = sync.call
    if call is not None and call.ended:
        inbound = _inbound(call)
        status_code = sync.status_code or statuses.status_code_for(
            state=call.state, inbound=inbound
        )
        duration = call.talk_seconds or 0
    else:  # a click-to-call that never reached Unitalk: finish with the failure we recorded
        inbound, status_code, duration = False, sync.status_code, 0
    sync.status_code = status_code  # stored with the finish
    finish_fields: dict[str, Any] = {
        "user_id": sync.user_id,
        "duration": duration,
        "status_code": status_code,
        "failed_reason": sync.failed_reason,
    }
    if sync.bitrix_call_id:
        return _Plan(
            sync,
            OP_FINISH,
            {f"f{sync.pk}": telephony.finish_command(call_id=sync.bitrix_call_id, **finish_fields)},
        )
    assert call is not None  # a row without CALL_ID always comes from a Unitalk call
    options = options or portal_options(portal)
    register = telephony.register_command(
        user_id=sync.user_id or 0,
        phone_number=sync.phone_number or call.client_number,
        call_type=telephony.TYPE_INCOMING if inbound else telephony.TYPE_OUTGOING,
        external_call_id=call.unitalk_call_id,
        line_number=sync.line_number,
        call_start=sync.call_start_sent,
        crm_create=options.create_leads,
        show=False,  # the call is over: no card to pop up
        **register_links(sync),
    )
    # `$result[...]` hands register's CALL_ID to finish in one request (docs/bitrix24.md §2.5).
    finish = telephony.finish_command(
        call_id=telephony.result_ref(f"r{sync.pk}", "CALL_ID"), **finish_fields
    )
    return _Plan(sync, OP_REGISTER_FINISH, {f"r{sync.pk}": register, f"f{sync.pk}": finish})


def _prepare(sync: CallSync, *, portal: Portal, users: dict[str, int | None] | None = None) -> None:
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


def _settle_s() -> float:
    # A request we gave up on (read timeout) may still run on the portal; wait it out before
    # looking, or the look-up could miss a finish that lands a moment later.
    return settings.HTTP_READ_TIMEOUT + settings.HTTP_CONNECT_TIMEOUT + 1.0


def _resolve_ambiguous(sync: CallSync, *, portal: Portal) -> bool:
    """After a register+finish batch whose answer was lost: is the call finished already?

    Returns True when it was (and records it). Raises SyncBusy while the lost request may still
    be running.
    """
    if sync.sent_at and (timezone.now() - sync.sent_at).total_seconds() < _settle_s():
        wait = _settle_s() - (timezone.now() - sync.sent_at).total_seconds()
        raise SyncBusy("waiting for a lost register+finish to settle", retry_after=max(1.0, wait))
    activity = crm.call_activity_find(
        portal,
        start_time=sync.call_start_sent,
        user_id=sync.user_id or 0,
        phone_digits=_digits(sync.phone_number),
    )
    if activity is None:
        logger.info("lost register+finish did not go through; registering again")
        CallSync.objects.filter(pk=sync.pk).update(sent_op=OP_REGISTER)
        sync.sent_op = OP_REGISTER
        return False
    call_id = crm.call_id_from_activity(activity)
    logger.info("lost register+finish had gone through; recorded it", extra={"call_id": call_id})
    _record_registered(sync, {"CALL_ID": call_id})
    _record_finished(sync, {"CRM_ACTIVITY_ID": activity.get("ID")})
    return True


def register_links(sync: CallSync) -> dict[str, Any]:
    """What register says about where the call belongs: the call list, and for a campaign dial
    the CRM item it was dialled for (a call seen at Unitalk is matched by Bitrix24 itself)."""
    links: dict[str, Any] = {"call_list_id": sync.call_list_id}
    if sync.origin == CallSync.Origin.CAMPAIGN and sync.crm_entity_id:
        links |= {"crm_entity_type": sync.crm_entity_type, "crm_entity_id": sync.crm_entity_id}
    return links


def _record_registered(sync: CallSync, result: dict[str, Any]) -> None:
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


def _record_finished(
    sync: CallSync, result: dict[str, Any], options: PortalOptions | None = None
) -> None:
    now = timezone.now()
    activity = result.get("CRM_ACTIVITY_ID")
    if not sync.status_code and sync.call is not None and sync.call.ended:
        # Finished by a path that built no plan (a lost batch found done): same table.
        sync.status_code = statuses.status_code_for(
            state=sync.call.state, inbound=_inbound(sync.call)
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


def _record_error(sync: CallSync, error: IntegrationError) -> None:
    CallSync.objects.filter(pk=sync.pk).update(last_error=str(error)[:2000])
    sync.last_error = str(error)[:2000]


def _batch_error(answer: dict[str, Any], method: str) -> IntegrationError:
    return bx_errors.error_build(
        code=str(answer.get("error") if answer.get("error") is not None else ""),
        description=str(answer.get("error_description") or ""),
        status=None,
        method=method,
    )


def _definitely_not_sent(error: Exception) -> bool:
    """Errors that come with an answer saying the request was not carried out."""
    return isinstance(error, RateLimitedError | AuthExpiredError | PausedError | PermanentError)


def push(
    plans: list[_Plan], *, portal: Portal, options: PortalOptions | None = None
) -> dict[int, IntegrationError]:
    """Send the plans' commands in one batch and record each call's outcome.

    Returns the error of every call that did not reach FINISHED. The caller holds the claims.
    """
    if not plans:
        return {}
    now = timezone.now()
    previous = {p.sync.pk: p.sync.sent_op for p in plans}
    for op in {p.op for p in plans}:
        # Committed before the request: a crash from here on leaves the doubt on record.
        CallSync.objects.filter(pk__in=[p.sync.pk for p in plans if p.op == op]).update(
            sent_op=op, sent_at=now
        )
    commands = {key: cmd for plan in plans for key, cmd in plan.commands.items()}
    try:
        result = telephony.batch_send(portal, commands)
    except IntegrationError as exc:
        # Our own budget said "not yet": nothing failed, so the calls stay free for any drain.
        own_budget = isinstance(exc, RateLimitedError) and exc.service == "ratelimit"
        for plan in plans:
            if _definitely_not_sent(exc):
                CallSync.objects.filter(pk=plan.sync.pk).update(sent_op=previous[plan.sync.pk])
            if not own_budget:
                _record_error(plan.sync, exc)
        return {plan.sync.pk: exc for plan in plans}
    failures: dict[int, IntegrationError] = {}
    # One commit for the whole batch's outcomes (a commit per row costs an fsync each). A crash
    # before it commits leaves `sent_op` set on every row, and the retries look before resending.
    with transaction.atomic():
        for plan in plans:
            sync = plan.sync
            with log_context(call=sync.pk):
                error = _outcome(plan, result, options)
            if error is not None:
                failures[sync.pk] = error
    logger.info(
        "sync batch sent",
        extra={"calls": len(plans), "commands": len(commands), "failed": len(failures)},
    )
    return failures


def _outcome(
    plan: _Plan, result: BatchResult, options: PortalOptions | None = None
) -> IntegrationError | None:
    sync = plan.sync
    rkey, fkey = f"r{sync.pk}", f"f{sync.pk}"
    if plan.op == OP_REGISTER_FINISH:
        if rkey in result.errors or not isinstance(result.results.get(rkey), dict):
            error = _batch_error(result.errors.get(rkey, {}), "telephony.externalCall.register")
            # Definite answer: nothing was registered, so nothing is in doubt.
            CallSync.objects.filter(pk=sync.pk).update(sent_op="")
            _record_error(sync, error)
            return error
        _record_registered(sync, result.results[rkey])
    if fkey in result.errors or not isinstance(result.results.get(fkey), dict):
        answer = result.errors.get(fkey, {})
        if plan.op == OP_FINISH and telephony.is_call_not_found(answer):
            # We registered it and only we finish it: an earlier finish went through.
            _record_finished(sync, {}, options)
            return None
        error = _batch_error(answer, "telephony.externalCall.finish")
        CallSync.objects.filter(pk=sync.pk).update(sent_op="")
        _record_error(sync, error)
        return error
    _record_finished(sync, result.results[fkey], options)
    return None


def sync_drain(*, portal: Portal, sync_id: int | None = None) -> dict[str, Any]:
    """Claim up to CALL_DRAIN_BATCH ready calls of a portal (this one first) and push them.

    Other calls whose last attempt failed are left to their own jobs (their backoff), so one
    permanently refused call does not ride along in every batch.
    """
    token = uuid.uuid4().hex
    limit = max(1, settings.CALL_DRAIN_BATCH)
    claimed: list[int] = []
    own_error: IntegrationError | None = None
    if sync_id is not None and _claim(sync_id, token):
        claimed.append(sync_id)
    now = timezone.now()
    others = (
        CallSync.objects.filter(ready_q(), _free_q(now), portal=portal, last_error="")
        .exclude(sent_op=OP_REGISTER_FINISH)
        .exclude(pk=sync_id or 0)
        # Newest first: jobs run oldest first, so each early job takes calls whose own jobs
        # are far back in the queue (they then find their call finished and return at once)
        # instead of the next 24 jobs all finding theirs taken.
        .order_by("-pk")
        .values_list("pk", flat=True)[: limit * 2]
    )
    wanted = list(others)[: limit - len(claimed)]
    if wanted:
        # One conditional UPDATE on the rows' own columns: safe against concurrent drains.
        lease = timedelta(seconds=settings.CALL_DRAIN_CLAIM_S)
        CallSync.objects.filter(_free_q(now), pk__in=wanted, stage__in=OPEN_STAGES).update(
            claim_token=token, claimed_until=now + lease, updated_at=now
        )
        claimed = list(CallSync.objects.filter(claim_token=token).values_list("pk", flat=True))
    options = portal_options(portal)
    users: dict[str, int | None] = {}
    try:
        plans: list[_Plan] = []
        rows = list(CallSync.objects.filter(pk__in=claimed).select_related("call").order_by("pk"))
        with transaction.atomic():
            for sync in rows:
                sync.portal = portal
                _prepare(sync, portal=portal, users=users)
        for sync in rows:
            with log_context(call=sync.pk):
                try:
                    if sync.sent_op == OP_REGISTER_FINISH and _resolve_ambiguous(
                        sync, portal=portal
                    ):
                        continue
                except IntegrationError as exc:
                    if sync.pk == sync_id:
                        own_error = exc
                    continue
                plans.append(_plan(sync, portal=portal, options=options))
        failures = push(plans, portal=portal, options=options)
    finally:
        _release(claimed, token)
    if sync_id is not None and own_error is None:
        own_error = failures.get(sync_id)
    finished = [pk for pk in claimed if pk not in failures]
    return {
        "claimed": len(claimed),
        "failed": len(failures),
        "own_error": own_error,
        "finished": finished,
        # Calls that met a real error (not just our budget's "not yet").
        "failed_ids": [
            pk
            for pk, error in failures.items()
            if not (isinstance(error, RateLimitedError) and error.service == "ratelimit")
        ],
    }


def sync_run(*, sync_id: int) -> dict[str, Any]:
    """Job `call.sync`: see this call finished in Bitrix24 (draining others on the way).

    Succeeds only when the call is finished; raises the call's own error (retry / dead by its
    class) or SyncBusy while another job holds it.
    """
    sync = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    with log_context(call=sync.pk):
        if sync.stage in DONE_STAGES:
            followups_enqueue(sync=sync)  # idempotent: a crash may have come between the two
            chain.drain_next(portal_id=sync.portal_id)
            return {"stage": sync.stage, "already": True}
        if not CallSync.objects.filter(ready_q(), pk=sync.pk).exists():
            chain.drain_next(portal_id=sync.portal_id)
            return {"stage": sync.stage, "skipped": "nothing to finish yet"}
        outcome = sync_drain(portal=sync.portal, sync_id=sync.pk)
        # The drain did its companions' work: their messages (if any) find nothing to do.
        chain.drained_jobs_settle(
            sync_ids=[pk for pk in outcome["finished"] if pk != sync.pk], drained_by=sync.pk
        )
        chain.drain_next(portal_id=sync.portal_id)
        # Calls that failed in this batch are left out of other drains: their own jobs retry them.
        chain.held_jobs_release(sync_ids=[pk for pk in outcome["failed_ids"] if pk != sync.pk])
        sync.refresh_from_db()
        if sync.stage in DONE_STAGES:
            return {"stage": sync.stage, "batch_calls": outcome["claimed"]}
        if outcome["own_error"] is not None:
            raise outcome["own_error"]
        raise SyncBusy("another job is finishing this call", retry_after=2.0)


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
            _free_q(now), pk=sync.pk, stage=CallSync.Stage.NEW, bitrix_call_id__isnull=True
        ).update(claim_token=token, claimed_until=now + lease):
            raise SyncBusy("another job holds this call", retry_after=2.0)
        try:
            _prepare(sync, portal=portal)
            options = portal_options(portal)
            call = sync.call
            CallSync.objects.filter(pk=sync.pk).update(sent_op=OP_REGISTER, sent_at=now)
            try:
                result = telephony.register(
                    portal,
                    user_id=sync.user_id or 0,
                    phone_number=sync.phone_number,
                    call_type=telephony.TYPE_INCOMING
                    if _inbound(call)
                    else telephony.TYPE_OUTGOING,
                    external_call_id=call.unitalk_call_id,
                    line_number=sync.line_number,
                    call_start=sync.call_start_sent,
                    crm_create=options.create_leads,
                    show=options.card_mode == options.CardMode.ON_RING,
                    **register_links(sync),
                )
            except IntegrationError as exc:
                if _definitely_not_sent(exc):
                    CallSync.objects.filter(pk=sync.pk).update(sent_op="")
                raise
            CallSync.objects.filter(pk=sync.pk).update(sent_op="")
            _record_registered(sync, result)
        finally:
            _release([sync.pk], token)
    return {"call_id": sync.bitrix_call_id}


# --- after finish -------------------------------------------------------------------------------


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
    if _inbound(call) and sync.status_code == statuses.MISSED:
        job_enqueue(KIND_MISSED, sync)
    if answered and not _inbound(call) and sync.phone_number:
        # An answered outgoing call reached the number: its missed calls were called back.
        failed.missed_calls_resolve_for_number(
            portal=sync.portal,
            phone_number=_digits(sync.phone_number),
            resolution=f"called back (call {sync.pk})",
        )


def details_store(*, sync_id: int) -> dict[str, Any]:
    """Job `call.details`: the call's facts on the CRM entity's timeline (once per call)."""
    sync = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    if sync.details_stored_at:
        return {"skipped": "stored"}
    call = sync.call
    comment = ""
    if sync.crm_entity_type and sync.crm_entity_id and call is not None:
        direction = "Incoming" if _inbound(call) else "Outgoing"
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
    """Job `call.card`: open the call card on answer (card mode "answer")."""
    row = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    if row.stage not in OPEN_STAGES or (row.call is not None and row.call.ended):
        return {"skipped": "call is over"}
    if not row.bitrix_call_id:
        raise SyncBusy("call not registered yet", retry_after=2.0)
    shown = telephony.card_show(row.portal, call_id=row.bitrix_call_id, user_ids=[row.user_id or 0])
    return {"shown": shown}
