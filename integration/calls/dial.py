"""Click-to-call and callbacks: from a Bitrix24 event to a Unitalk directCall.

ONEXTERNALCALLSTART: the portal already registered the call (docs/bitrix24.md §5.6) — we never
register it again; we dial through Unitalk with `meta` = the Bitrix24 CALL_ID, and the webhooks
that echo it are matched back to the same CallSync, which `call.sync` then finishes.
ONEXTERNALCALLBACKSTART: nothing is registered; we register a callback (TYPE 4), then dial.

A person waits on the phone, and a click is now or never (issue 21 item 1): a click carries
`dial_by` (click time + CALL_CLICK_DEADLINE_S). Within it transient failures are retried quickly
(CALL_CLICK_RETRY_BASE_S, doubling, at most 4 s) and the call card's tab shows each attempt; past
it the job dies as "click expired" and is never dialled later, whatever brings it back (a
retry, a resumed pause, the dispatcher): the check comes before every directCall. A refused key
fails the click at once instead of pausing it. Dials without `dial_by` (rows from before) keep
the old horizon CALL_DIAL_HORIZON_S. When dialing fails for good the Bitrix24 call is finished
with a failure code and FAILED_REASON, a dial_failed item is opened and the user is told in
their language; "Try again" (failed.failed_call_retry) gives the job a fresh deadline.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bitrixapp.models import BitrixEvent
from integration.bitrix import telephony
from integration.calls import failed, statuses, sync, takeover
from integration.calls.models import CallSync, FailedCall
from integration.core import inputs
from integration.core.errors import (
    PausedError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from integration.core.log import log_context
from integration.models import Job
from integration.unitalk import client as unitalk_client
from integration.unitalk import selectors as unitalk_selectors
from integration.unitalk import services as unitalk_services

logger = logging.getLogger(__name__)

KIND_DIAL = "call.dial"


class DialNoLine(PermanentError):
    """The Bitrix24 user has no Unitalk line mapped: nothing to ring first."""


class DialLineFailing(PermanentError):
    """Presence says the user's line is failing: a colleague takes the click (docs/routing.md)."""


class DialGaveUp(PermanentError):
    """Unitalk stayed unreachable past the dial horizon."""


class DialExpired(PermanentError):
    """The click's deadline passed before Unitalk accepted the call: it is never dialled later."""


class DialKeyRefused(PermanentError):
    """Unitalk refused the API key during a click: the person is told now, not after a fix."""


class DialRetry(RateLimitedError):
    """Unitalk failed transiently; try again after a delay that doubles per attempt.

    Raised as "wait as told" so the delays grow predictably (the person on the line is waiting
    and the failed-call page shows them) instead of the general full-jitter backoff.
    """

    precise = True  # retry.decide: only a few per cent of jitter on the chosen delay


def _int(value: Any, field: str) -> int | None:
    """A positive id of the event's data, None for "", "0" or absent. Raises InputError (the
    job dead-letters as a validation failure) for anything that is not a bounded number."""
    number = inputs.parse_int_or_none(value, field=field)
    return number or None


def click_to_call_start(*, event: BitrixEvent) -> CallSync | None:
    """ONEXTERNALCALLSTART → CallSync(click_to_call) → job call.dial. Repeats are no-ops."""
    data = event.data or {}
    call_id = str(data.get("CALL_ID") or "")
    if not call_id or event.portal is None:
        logger.warning("click-to-call event without CALL_ID or portal; ignored")
        return None
    entity_id = _int(data.get("CRM_ENTITY_ID"), "data[CRM_ENTITY_ID]")
    user_id = _int(data.get("USER_ID"), "data[USER_ID]")
    # Insert first, read only on a clash: a click's CALL_ID is new unless the portal sent its
    # event twice (the event door runs this for every click: issue 17).
    try:
        with transaction.atomic():
            row = CallSync.objects.create(
                portal=event.portal,
                bitrix_call_id=call_id,
                origin=CallSync.Origin.CLICK_TO_CALL,
                stage=CallSync.Stage.DIALING,
                user_id=user_id or event.user_id,
                phone_number=str(data.get("PHONE_NUMBER") or ""),
                line_number=str(data.get("LINE_NUMBER") or ""),
                crm_entity_type=str(data.get("CRM_ENTITY_TYPE") or "") if entity_id else "",
                crm_entity_id=entity_id,
                call_list_id=_int(data.get("CALL_LIST_ID"), "data[CALL_LIST_ID]"),
                registered_at=timezone.now(),
            )
        created = True
    except IntegrityError:
        row, created = CallSync.objects.get(portal=event.portal, bitrix_call_id=call_id), False
    with log_context(call=row.pk, portal=event.portal.member_id):
        if created:
            logger.info("click-to-call received")
        # Dialled in this worker right away (one hop fewer), the job row stays the truth.
        sync.job_enqueue(KIND_DIAL, row, run_here=True, extra=click_deadline(event.received_at))
    return row


def click_deadline(clicked_at: Any = None) -> dict[str, float]:
    """The payload part that makes a dial a person's click: dial by then or never."""
    start = clicked_at.timestamp() if clicked_at is not None else time.time()
    return {"dial_by": round(start + settings.CALL_CLICK_DEADLINE_S, 3)}


def callback_start(*, event: BitrixEvent) -> CallSync | None:
    """ONEXTERNALCALLBACKSTART → CallSync(callback) → job call.dial (registers TYPE 4 first)."""
    data = event.data or {}
    if event.portal is None:
        return None
    entity_id = _int(data.get("CRM_ENTITY_ID"), "data[CRM_ENTITY_ID]")
    phone = str(data.get("PHONE_NUMBER") or "")
    # No natural id in a callback event: one row per event (the event row is unique already).
    row = CallSync.objects.filter(
        portal=event.portal,
        origin=CallSync.Origin.CALLBACK,
        phone_number=phone,
        created_at__gte=event.received_at,
    ).first() or CallSync.objects.create(
        portal=event.portal,
        origin=CallSync.Origin.CALLBACK,
        user_id=sync.call_user(portal=event.portal, call=None),
        phone_number=phone,
        line_number=str(data.get("LINE_NUMBER") or "") or settings.BITRIX24_LINE_NUMBER,
        crm_entity_type=str(data.get("CRM_ENTITY_TYPE") or "") if entity_id else "",
        crm_entity_id=entity_id,
    )
    sync.job_enqueue(KIND_DIAL, row, run_here=True, extra=click_deadline(event.received_at))
    return row


def _retry_delay(attempt: int, *, click: bool) -> float:
    if click:
        return float(min(4.0, settings.CALL_CLICK_RETRY_BASE_S * 2 ** max(0, attempt - 1)))
    return float(
        min(settings.JOB_BACKOFF_CAP_S, settings.JOB_BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    )


def _expired(job: Job, why: str) -> DialExpired:
    seconds = round(settings.CALL_CLICK_DEADLINE_S)
    return DialExpired(
        f"click expired: not dialled within {seconds} s of the click ({why})", service="unitalk"
    )


def call_dial(*, job: Job) -> dict[str, Any]:
    """Job `call.dial`: ring the user's line, then the client (Unitalk directCall).

    Raises DialNoLine / PermanentError (dead at once), DialRetry (transient, growing delay),
    DialGaveUp past CALL_DIAL_HORIZON_S, CredentialsInvalidError (paused until a new key).
    """
    row = CallSync.objects.select_related("portal").get(pk=job.payload["sync_id"])
    portal = row.portal
    dial_by = job.payload.get("dial_by")
    with log_context(call=row.pk):
        if row.call_id is not None and row.stage not in sync.DONE_STAGES:
            return {"skipped": "Unitalk already reported this call"}
        if dial_by is not None and time.time() > float(dial_by):
            # However this job came back (retry, resumed pause, dispatcher): never dial late.
            raise _expired(job, job.last_error or "the job started too late")
        redial = row.stage in sync.DONE_STAGES  # a person retried a failed dial by hand
        try:
            connection = unitalk_services.connection_for_work(portal=portal)
        except PausedError as exc:
            if dial_by is None:
                raise
            raise DialKeyRefused(str(exc), service="unitalk") from exc
        line = unitalk_selectors.operator_line_for_user(portal, row.user_id or 0)
        if not line:
            raise DialNoLine(
                f"Bitrix24 user {row.user_id} has no Unitalk line; map one on the settings page",
                service="unitalk",
            )
        refusal = "" if redial else takeover.click_line_refusal(row=row, line=line)
        if refusal:
            raise DialLineFailing(refusal, service="unitalk")
        withheld = "" if redial else takeover.dial_refusal(row=row)
        if withheld:
            logger.info("dial withheld", extra={"reason": withheld})
            return {"skipped": withheld}
        if row.origin == CallSync.Origin.CALLBACK and not row.bitrix_call_id and not redial:
            result = telephony.register(
                portal,
                user_id=row.user_id or 0,
                phone_number=row.phone_number,
                call_type=telephony.TYPE_CALLBACK,
                external_call_id=f"callback-{row.pk}",
                line_number=row.line_number,
                crm_create=False,
                show=True,
                crm_entity_type=row.crm_entity_type,
                crm_entity_id=row.crm_entity_id,
            )
            sync.record_registered(row, result)
        # A redial is logged as a fresh call seen at Unitalk: the failed one is finished already.
        meta = "" if redial else (row.bitrix_call_id or row.dial_meta or "")
        try:
            unitalk_client.direct_call(
                unitalk_services.connection_credentials(connection=connection),
                sip=line,
                number=row.phone_number,
                meta=meta,
            )
        except PausedError as exc:
            if dial_by is None:
                raise
            raise DialKeyRefused(str(exc), service="unitalk") from exc
        except TransientError as exc:
            delay = _retry_delay(job.attempts, click=dial_by is not None)
            if isinstance(exc, RateLimitedError):
                delay = max(delay, exc.retry_after)
            if dial_by is not None:
                if time.time() + delay > float(dial_by):
                    raise _expired(job, str(exc)) from exc
                raise DialRetry(
                    f"Unitalk failed ({exc}); dialing again", retry_after=delay
                ) from exc
            first = job.first_attempt_at or timezone.now()
            deadline = first + timedelta(seconds=settings.CALL_DIAL_HORIZON_S)
            if timezone.now() + timedelta(seconds=delay) > deadline:
                raise DialGaveUp(
                    f"Unitalk unreachable for {settings.CALL_DIAL_HORIZON_S} s: {exc}",
                    service="unitalk",
                ) from exc
            raise DialRetry(f"Unitalk failed ({exc}); dialing again", retry_after=delay) from exc
        logger.info("dialed through Unitalk", extra={"line": line, "redial": redial})
    return {"line": line, "redial": redial}


def dial_failed(*, job: Job, error: BaseException) -> None:
    """The dial job died: finish the Bitrix24 call as failed, open an item, tell the user."""
    row = CallSync.objects.select_related("portal").get(pk=job.payload["sync_id"])
    if isinstance(error, DialNoLine):
        code, trigger = statuses.DIAL_NO_LINE, takeover.NO_LINE
    elif isinstance(error, DialGaveUp | DialExpired):
        code, trigger = statuses.DIAL_GAVE_UP, takeover.UNITALK_DOWN
    elif isinstance(error, DialLineFailing):
        code, trigger = statuses.DIAL_GAVE_UP, takeover.LINE_FAILING
    else:
        code = statuses.DIAL_REFUSED
        trigger = takeover.UNITALK_DOWN if isinstance(error, DialKeyRefused) else takeover.REFUSED
    technical = str(getattr(error, "message", "") or error)[:255]
    if (
        row.stage in sync.OPEN_STAGES
        and row.call_id is None
        and takeover.click_failed_takeover(row=row, trigger=trigger, code=code)
    ):
        return  # fallback routing tells the user and finishes the call (docs/routing.md)
    with translation.override(row.portal.lang or "en"):
        reason = _human_reason(error, technical)
        message = _(
            "Your call to %(number)s could not be placed: %(reason)s. Press “Try again” in the"
            " call's Unitalk tab or on the Failed calls page to dial it now."
        ) % {"number": row.phone_number, "reason": reason}
    with log_context(call=row.pk):
        if row.stage in sync.OPEN_STAGES and row.call_id is None:
            CallSync.objects.filter(pk=row.pk, status_code="").update(
                status_code=code, failed_reason=reason
            )
            if row.bitrix_call_id:
                sync.job_enqueue(sync.KIND_SYNC, row)
        failed.failed_call_report(
            row=row,
            kind=FailedCall.Kind.DIAL_FAILED,
            dedupe_key=f"dial:{row.pk}",
            reason=reason,
            job=job,
            notice_kind="call.dial_failed",
            message=message,
            context={"status_code": code, "error": technical},
            # The reason is already in the portal's language, as the notice is.
            params={"reason": reason},
        )
        logger.warning("dial failed for good", extra={"status_code": code})


def _human_reason(error: BaseException, technical: str) -> str:
    """What the person is told (in the active language); the technical text stays in the job."""
    if isinstance(error, DialExpired):
        seconds = round(settings.CALL_CLICK_DEADLINE_S)
        return ngettext(
            "Unitalk did not accept the call within %(seconds)d second",
            "Unitalk did not accept the call within %(seconds)d seconds",
            seconds,
        ) % {"seconds": seconds}
    if isinstance(error, DialKeyRefused):
        return _("Unitalk refused the API key; an administrator must enter a valid key")
    if isinstance(error, DialNoLine):
        return _("you have no Unitalk line; an administrator can map one in the app's settings")
    if isinstance(error, DialGaveUp):
        return _("Unitalk could not be reached")
    if isinstance(error, DialLineFailing):
        return _("your Unitalk line is failing; check your softphone")
    return technical


__all__ = ["KIND_DIAL", "call_dial", "callback_start", "click_to_call_start", "dial_failed"]


def dial_event_route(*, event: Any) -> None:
    """A stored Bitrix24 telephony event (job `bitrix.event`): start a click-to-call or a
    callback. Repeats are no-ops; other events are not the call pipeline's."""
    name = event.event.upper()
    if name == "ONEXTERNALCALLSTART":
        click_to_call_start(event=event)
    elif name == "ONEXTERNALCALLBACKSTART":
        callback_start(event=event)
    else:
        logger.info("event not for the call pipeline", extra={"event": name})
