"""The drain: register+finish of ended calls, batched (docs/pipeline.md, docs/bitrix24.md §2.5).

Throughput: one `batch` carries register+finish for up to CALL_DRAIN_BATCH calls (50 commands,
one request of the portal's leaky bucket), so a backlog drains at ~25 calls per request. The
row's claim and the recording of each answer are calls/sync.py's state machine.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bitrixapp.models import Portal, PortalOptions, portal_options
from integration.bitrix import crm, telephony
from integration.bitrix import errors as bx_errors
from integration.bitrix.batch import BatchResult
from integration.calls import chain, statuses
from integration.calls.models import CallSync
from integration.calls.sync import (
    DONE_STAGES,
    OP_FINISH,
    OP_REGISTER,
    OP_REGISTER_FINISH,
    OPEN_STAGES,
    SyncBusy,
    call_inbound,
    claim,
    definitely_not_sent,
    followups_enqueue,
    free_q,
    phone_digits,
    prepare,
    ready_q,
    record_error,
    record_finished,
    record_registered,
    register_links,
    release,
)
from integration.core.errors import IntegrationError, RateLimitedError
from integration.core.log import log_context

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    sync: CallSync
    op: str
    commands: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def _plan(sync: CallSync, *, portal: Portal, options: PortalOptions | None = None) -> _Plan:
    """The commands that take this call to FINISHED from where it stands."""
    call = sync.call
    if call is not None and call.ended:
        inbound = call_inbound(call)
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
        phone_digits=phone_digits(sync.phone_number),
    )
    if activity is None:
        logger.info("lost register+finish did not go through; registering again")
        CallSync.objects.filter(pk=sync.pk).update(sent_op=OP_REGISTER)
        sync.sent_op = OP_REGISTER
        return False
    call_id = crm.call_id_from_activity(activity)
    logger.info("lost register+finish had gone through; recorded it", extra={"call_id": call_id})
    record_registered(sync, {"CALL_ID": call_id})
    record_finished(sync, {"CRM_ACTIVITY_ID": activity.get("ID")})
    return True


def _batch_error(answer: dict[str, Any], method: str) -> IntegrationError:
    return bx_errors.error_build(
        code=str(answer.get("error") if answer.get("error") is not None else ""),
        description=str(answer.get("error_description") or ""),
        status=None,
        method=method,
    )


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
            if definitely_not_sent(exc):
                CallSync.objects.filter(pk=plan.sync.pk).update(sent_op=previous[plan.sync.pk])
            if not own_budget:
                record_error(plan.sync, exc)
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
            record_error(sync, error)
            return error
        record_registered(sync, result.results[rkey])
    if fkey in result.errors or not isinstance(result.results.get(fkey), dict):
        answer = result.errors.get(fkey, {})
        if plan.op == OP_FINISH and telephony.is_call_not_found(answer):
            # We registered it and only we finish it: an earlier finish went through.
            record_finished(sync, {}, options)
            return None
        error = _batch_error(answer, "telephony.externalCall.finish")
        CallSync.objects.filter(pk=sync.pk).update(sent_op="")
        record_error(sync, error)
        return error
    record_finished(sync, result.results[fkey], options)
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
    if sync_id is not None and claim(sync_id, token):
        claimed.append(sync_id)
    now = timezone.now()
    others = (
        CallSync.objects.filter(ready_q(), free_q(now), portal=portal, last_error="")
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
        CallSync.objects.filter(free_q(now), pk__in=wanted, stage__in=OPEN_STAGES).update(
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
                prepare(sync, portal=portal, users=users)
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
        release(claimed, token)
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
        # Calls that failed in this batch are left out of other drains: their own jobs retry them.
        chain.held_jobs_release(sync_ids=[pk for pk in outcome["failed_ids"] if pk != sync.pk])
        sync.refresh_from_db()
        error = outcome["own_error"]
        # The next link only when this one ends: a drain that will retry (our budget said
        # "later", SyncBusy) is still the chain's link, and publishing one per retry widened a
        # 4-drain chain to hundreds of jobs racing for the budget (bench/agent_status.py).
        if sync.stage in DONE_STAGES or (error is not None and not error.retryable):
            chain.drain_next(portal_id=sync.portal_id)
        if sync.stage in DONE_STAGES:
            return {"stage": sync.stage, "batch_calls": outcome["claimed"]}
        if error is not None:
            raise error
        raise SyncBusy("another job is finishing this call", retry_after=2.0)
