"""Fallback routing's writes: decide a failed click's reroute once, tell people, hand the call
on (ask first, or dial from the next person's line), or open the callback task
(docs/routing.md "What happens").

Exactly once: a Reroute row per original call (one-to-one), the decision taken under its row
lock, the next person's call one-to-one with it and registered with EXTERNAL_CALL_ID
`reroute-<id>`, every job keyed by the reroute.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integration import jobs
from integration.agents.models import AgentState, Reason
from integration.bitrix import client, telephony
from integration.calls import dial, failed, sync, takeover
from integration.calls.models import CallSync, FailedCall
from integration.core import alerts
from integration.core.log import log_context
from integration.models import Notification
from integration.routing import chain, facts, reasons
from integration.routing.models import Reroute, RoutingPolicy
from integration.unitalk import selectors as unitalk_selectors

logger = logging.getLogger(__name__)

KIND_REROUTE = "routing.reroute"
KIND_DIAL = "routing.dial"
KIND_TODO = "routing.todo"
TAG_UNITALK_DOWN = "routing:unitalk_down"
#: crm.activity.todo.add ownerTypeId per entity type (docs/bitrix24.md §4).
OWNER_TYPE_IDS = {"LEAD": 1, "DEAL": 2, "CONTACT": 3, "COMPANY": 4}


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch in "0123456789")


def reroute_enqueue(*, row: CallSync, trigger: str, code: str) -> bool:
    """The call pipeline's takeover hook (calls/takeover.py): True when routing takes the click.

    Not taken (the pipeline's own failed click: notice with "Try again", a failed-call item):
    a call that already is a reroute's dial (so A → B → A across calls cannot happen), a portal
    that switched routing off, Unitalk itself failing (nobody could dial either), and a failed
    dial when nobody else is available at all (every step past the own line needs an available
    person, so the chain could only end in the callback task, which that item already is).
    """
    if trigger == takeover.UNITALK_DOWN or Reroute.objects.filter(dial_sync=row).exists():
        return False
    policy = facts.policy_get(portal=row.portal)
    if not policy.enabled:
        return False
    # A line that did not ring has no failed-click answer of the pipeline's own: routing always
    # takes it, so the caller is told and a callback task exists even when nobody is available.
    leg = trigger == takeover.LINE_UNREACHABLE
    if not leg and not facts.anyone_available(portal=row.portal, besides=row.user_id):
        return False
    existing = Reroute.objects.filter(sync=row).values_list("state", flat=True).first()
    if existing is not None and existing != Reroute.State.PENDING:
        return False  # decided already: the pipeline finishes it as usual
    jobs.job_enqueue(
        kind=KIND_REROUTE,
        key=f"{KIND_REROUTE}:{row.pk}",
        portal=row.portal,
        subject=f"call-sync:{row.pk}",
        payload={"sync_id": row.pk, "trigger": trigger, "code": code},
        run_here=True,
    )
    return True


def line_refusal(*, row: CallSync, line: str) -> str:
    """calls/takeover.py line check: presence marked the line failing a short while ago."""
    agent = AgentState.objects.filter(portal_id=row.portal_id, line=line).first()
    if agent is None or agent.reason != Reason.LINE_FAILING:
        return ""
    if timezone.now() - agent.since > timedelta(seconds=settings.ROUTING_LINE_FAILING_HOLD_S):
        return ""  # long enough: this click probes the line again
    return f"line {line} is failing (presence since {agent.since:%H:%M:%S})"


def _notify(
    row: CallSync, *, kind: str, user_id: int | None, tag: str, params: dict[str, Any], text: str
) -> None:
    alerts.notification_raise(
        portal=row.portal,
        kind=kind,
        message=text,
        tag=tag,
        severity=Notification.Severity.WARNING,
        user_id=user_id,
        params=params,
        context={"sync_id": row.pk},
        log_level=logging.INFO,  # the call is being taken care of
    )


def _callback_open(row: CallSync, reroute: Reroute, reason: str) -> FailedCall:
    """The callback task: a "call back" item for the caller (the missed-call list, resolved by
    any answered outgoing call to the number as today) and a Bitrix24 to-do on the record."""
    item = _callback_item(row, reason)
    if row.crm_entity_type in OWNER_TYPE_IDS and row.crm_entity_id:
        todo_enqueue(reroute=reroute, user_id=row.user_id)
    return item


def _callback_item(row: CallSync, reason: str) -> FailedCall:
    """The caller's "call back" item on the missed-call list, one per number."""
    number = _digits(row.phone_number) or row.phone_number
    return failed.failed_call_open(
        portal=row.portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key=f"missed:{number}",
        reason=f"callback needed: {reason}",
        phone_number=number,
        owner_user_id=row.user_id,
        sync=row,
        crm_entity_type=row.crm_entity_type,
        crm_entity_id=row.crm_entity_id,
    )


def todo_enqueue(*, reroute: Reroute, user_id: int | None) -> None:
    jobs.job_enqueue(
        kind=KIND_TODO,
        key=f"{KIND_TODO}:{reroute.pk}:{user_id}",
        portal=reroute.portal,
        subject=f"reroute:{reroute.pk}",
        payload={"reroute_id": reroute.pk, "user_id": user_id},
    )


def reroute_decide(*, sync_id: int, trigger: str, code: str) -> dict[str, Any]:
    """Job `routing.reroute`: evaluate the chain once, record the path, act, finish the call."""
    row = CallSync.objects.select_related("portal").get(pk=sync_id)
    portal = row.portal
    with log_context(call=row.pk):
        reroute, _ = Reroute.objects.get_or_create(
            sync=row,
            defaults={
                "portal": portal,
                "trigger": trigger,
                "status_code": code,
                "from_user_id": row.user_id,
                "phone_number": row.phone_number,
                "crm_entity_type": row.crm_entity_type,
                "crm_entity_id": row.crm_entity_id,
            },
        )
        if reroute.state != Reroute.State.PENDING:
            return {"skipped": "decided already", "reroute": reroute.pk}
        # Read outside the lock: the CRM responsible is a Bitrix24 request.
        snapshot = facts.facts_build(
            portal=portal,
            row=row,
            own_failed=trigger,
            unitalk_up=trigger != takeover.UNITALK_DOWN,
        )
        decision = chain.chain_evaluate(snapshot)
        policy = facts.policy_get(portal=portal)
        with transaction.atomic():
            locked = Reroute.objects.select_for_update().get(pk=reroute.pk)
            if locked.state != Reroute.State.PENDING:
                return {"skipped": "decided already", "reroute": reroute.pk}
            _apply(locked, row, decision, policy)
        logger.info("click rerouted", extra={"step": decision.step, "to": locked.to_user_id or "-"})
    return {
        "reroute": locked.pk,
        "step": decision.step,
        "state": locked.state,
        "item": locked.failed_item_id,
    }


def _apply(reroute: Reroute, row: CallSync, decision: chain.Decision, policy: Any) -> None:
    person = decision.person
    reroute.path = decision.path
    reroute.step = decision.step
    reroute.mode = policy.mode
    if person is not None:
        reroute.to_user_id, reroute.to_name, reroute.to_line = (
            person.user_id,
            person.name,
            person.line,
        )
    with translation.override(row.portal.lang or "en"):
        reason = reasons.path_short(reroute)
    phone = row.phone_number
    caller_tag = f"routing:{reroute.pk}:caller"
    down = reroute.trigger == takeover.UNITALK_DOWN
    if decision.callback:
        item = _callback_open(row, reroute, reason)
        reroute.state, reroute.failed_item_id = Reroute.State.CALLBACK, item.pk
        kind = "routing.unitalk_down" if down else "routing.callback"
        params = {"phone": phone, "why": reroute.trigger}
        _notify(row, kind=kind, user_id=row.user_id, tag=caller_tag, params=params, text=reason)
        if down:
            # The banner on every app page until a dial goes through again (flow.py).
            alerts.notification_raise(
                portal=row.portal,
                kind="routing.unitalk_down",
                message=reason,
                tag=TAG_UNITALK_DOWN,
                severity=Notification.Severity.ERROR,
                params={"phone": ""},
            )
    else:
        assert person is not None
        dialing = policy.mode == RoutingPolicy.Mode.DIAL
        reroute.state = Reroute.State.DIALING if dialing else Reroute.State.ASKED
        params = {"phone": phone, "name": person.name, "mode": policy.mode, "why": reroute.trigger}
        _notify(
            row, kind="routing.rerouted", user_id=row.user_id, tag=caller_tag, params=params,
            text=reason,
        )  # fmt: skip
        if dialing:
            dial_enqueue(reroute=reroute)
        else:
            caller = facts.facts_name(portal=row.portal, user_id=row.user_id)
            _notify(
                row,
                kind="routing.asked",
                user_id=person.user_id,
                tag=f"routing:{reroute.pk}:next",
                params={"phone": phone, "caller": caller, "reroute": reroute.pk},
                text=reason,
            )
            if row.crm_entity_type in OWNER_TYPE_IDS and row.crm_entity_id:
                todo_enqueue(reroute=reroute, user_id=person.user_id)
    reroute.save()
    takeover.click_release(row=row, reason=reason)


def reroute_failed(*, sync_id: int, error: str) -> None:
    """The reroute job died: still finish the call and leave a callback task, never silence."""
    row = CallSync.objects.select_related("portal").get(pk=sync_id)
    reroute = Reroute.objects.filter(sync=row).first()
    if reroute is not None and reroute.state != Reroute.State.PENDING:
        return
    reason = "could not be rerouted; a callback task was created"
    if reroute is not None:
        Reroute.objects.filter(pk=reroute.pk).update(state=Reroute.State.FAILED, error=error[:2000])
    _callback_item(row, reason)
    _notify(
        row, kind="routing.callback", user_id=row.user_id, tag=f"routing:sync:{row.pk}:caller",
        params={"phone": row.phone_number, "why": ""}, text=error[:500],
    )  # fmt: skip
    takeover.click_release(row=row, reason=reason)


#: Dial failures that mean Unitalk itself fails for everybody (calls/dial.py).
UNITALK_DOWN_ERRORS = frozenset({"DialExpired", "DialKeyRefused", "DialGaveUp"})


def unitalk_down_banner(*, job: Any) -> None:
    """A click died because Unitalk itself fails (key refused, API down past the click's
    deadline): the click already got its immediate answer and its failed-call item (calls/
    dial.py); the admins get one banner on every app page until a dial goes through again."""
    if job.last_error_class not in UNITALK_DOWN_ERRORS:
        return
    alerts.notification_raise(
        portal=job.portal,
        kind="routing.unitalk_down",
        message=job.last_error[:500],
        tag=TAG_UNITALK_DOWN,
        severity=Notification.Severity.ERROR,
        params={},
    )


# --- the next person's call ------------------------------------------------------------------------


def dial_enqueue(*, reroute: Reroute) -> None:
    jobs.job_enqueue(
        kind=KIND_DIAL,
        key=f"{KIND_DIAL}:{reroute.pk}",
        portal=reroute.portal,
        subject=f"reroute:{reroute.pk}",
        payload={"reroute_id": reroute.pk},
        run_here=True,
    )


def reroute_dial(*, reroute_id: int) -> dict[str, Any]:
    """Job `routing.dial`: register a new outbound call for the next person and dial it from
    their line (call.dial, with a click's deadline). Safe to repeat: one call per reroute."""
    reroute = Reroute.objects.select_related("portal", "sync").get(pk=reroute_id)
    portal = reroute.portal
    user_id = reroute.to_user_id
    if not user_id:
        return {"skipped": "nobody to dial"}
    line = unitalk_selectors.operator_line_for_user(portal, user_id)
    if not line:
        raise dial.DialNoLine(f"user {user_id} has no Unitalk line any more", service="unitalk")
    original = reroute.sync
    with transaction.atomic():
        locked = Reroute.objects.select_for_update().get(pk=reroute.pk)
        new = locked.dial_sync
        if new is None:
            new = CallSync.objects.create(
                portal=portal,
                origin=CallSync.Origin.CLICK_TO_CALL,
                stage=CallSync.Stage.DIALING,
                user_id=user_id,
                phone_number=original.phone_number,
                line_number=original.line_number,
                crm_entity_type=original.crm_entity_type,
                crm_entity_id=original.crm_entity_id,
            )
            Reroute.objects.filter(pk=locked.pk).update(
                dial_sync=new, state=Reroute.State.DIALING, updated_at=timezone.now()
            )
    if not new.bitrix_call_id:
        # register dedups on EXTERNAL_CALL_ID, so a retry after a lost answer adds no call.
        result = telephony.register(
            portal,
            user_id=user_id,
            phone_number=new.phone_number,
            call_type=telephony.TYPE_OUTGOING,
            external_call_id=f"reroute-{reroute.pk}",
            line_number=new.line_number,
            crm_create=False,
            show=True,
            crm_entity_type=new.crm_entity_type,
            crm_entity_id=new.crm_entity_id,
        )
        CallSync.objects.filter(pk=new.pk, bitrix_call_id__isnull=True).update(
            bitrix_call_id=str(result["CALL_ID"]), registered_at=timezone.now()
        )
        new.refresh_from_db()
    sync.job_enqueue(dial.KIND_DIAL, new, run_here=True, extra=dial.click_deadline())
    return {"sync": new.pk, "call_id": new.bitrix_call_id}


def reroute_dial_failed(*, reroute_id: int, error: str) -> None:
    """The next person's call could not be registered or their line is gone: the caller, who
    was told that person calls, gets the callback task instead (never a silent dead job)."""
    reroute = Reroute.objects.select_related("portal", "sync").get(pk=reroute_id)
    row = reroute.sync
    row.portal = reroute.portal
    Reroute.objects.filter(pk=reroute.pk).update(error=error[:2000])
    with translation.override(reroute.portal.lang or "en"):
        reason = reasons.path_short(reroute)
    item = _callback_open(row, reroute, reason)
    Reroute.objects.filter(pk=reroute.pk).update(
        state=Reroute.State.CALLBACK, failed_item_id=item.pk
    )
    _notify(
        row,
        kind="routing.callback",
        user_id=row.user_id,
        tag=f"routing:{reroute.pk}:caller",
        params={"phone": row.phone_number, "why": reroute.trigger},
        text=error[:500],
    )


def reroute_todo(*, reroute_id: int, user_id: int | None) -> dict[str, Any]:
    """Job `routing.todo`: a to-do on the CRM record for the person who should call."""
    reroute = Reroute.objects.select_related("portal").get(pk=reroute_id)
    deadline = (timezone.now() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    with translation.override(reroute.portal.lang or "en"):
        title = _("Call back %(phone)s") % {"phone": reroute.phone_number}
        description = reasons.path_short(reroute)
    params: dict[str, Any] = {
        "ownerTypeId": OWNER_TYPE_IDS[reroute.crm_entity_type],
        "ownerId": reroute.crm_entity_id,
        "deadline": deadline,
        "title": title,
        "description": description,
    }
    if user_id:
        params["responsibleId"] = user_id
    return {"todo": client.call(reroute.portal, "crm.activity.todo.add", params)}
