"""A click-to-call that cannot reach the client may be taken over by fallback routing
(integration/routing/flow.py registers the hooks; docs/routing.md "Where the pipeline asks").

The call pipeline knows no routing: it asks the registered hooks at the two places where a
click ends without a conversation, and otherwise does what it always did:
- the dial job died for good (dial.dial_failed: no line, line failing, refused, Unitalk down);
- Unitalk placed the call but the operator's own phone never rang (an unregistered softphone:
  CHANUNAVAIL / UNREACHABLE / NOANSWER with secondsFullTime ≤ 1, docs/agents.md §5.1).
A hook that takes the call over gets the row held from the drain (a claim the drains respect,
CALL_DRAIN_CLAIM_S at most) with its status code set, and must call `click_release` with the
FAILED_REASON that names the reroute; if it never does, the hold expires and the next drain
finishes the call with the plain code, so the Bitrix24 call is never left open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from integration.calls import statuses, sync
from integration.calls.models import Call, CallSync

logger = logging.getLogger(__name__)

#: Why a click could not reach the client (the hooks' `trigger`).
NO_LINE = "no_line"
LINE_FAILING = "line_failing"
LINE_UNREACHABLE = "line_unreachable"
REFUSED = "refused"
UNITALK_DOWN = "unitalk_down"

#: Operator-leg outcomes that mean the operator's phone did not ring (docs/agents.md §5.1).
LEG_FAILED_STATES = frozenset({"CHANUNAVAIL", "UNREACHABLE", "NOANSWER"})
HOLD = "takeover"

ClickHook = Callable[..., bool]
LineCheck = Callable[..., str]
UserPick = Callable[..., int | None]
_click_hooks: list[ClickHook] = []
_line_checks: list[LineCheck] = []
DialCheck = Callable[..., str]
_dial_checks: list[DialCheck] = []
_inbound_picks: list[UserPick] = []
_missed_picks: list[UserPick] = []
CardViewers = Callable[..., list[int]]
_card_viewers: list[CardViewers] = []


def on_inbound_user(pick: UserPick) -> UserPick:
    """Declare `pick(row=, call=) -> user id | None`: who gets a ringing inbound call's card
    when the line's own user cannot take it (None: the line's user, as always)."""
    if pick not in _inbound_picks:
        _inbound_picks.append(pick)
    return pick


def on_card_viewers(viewers: CardViewers) -> CardViewers:
    """Declare `viewers(row=) -> [user id]`: who else sees a call's card besides its user."""
    if viewers not in _card_viewers:
        _card_viewers.append(viewers)
    return viewers


def card_users(*, row: CallSync) -> list[int]:
    """The call's user first, then every declared viewer once."""
    users = [row.user_id] if row.user_id else []
    for viewers in _card_viewers:
        users += [u for u in viewers(row=row) if u not in users]
    return users


def on_missed_owner(pick: UserPick) -> UserPick:
    """Declare `pick(row=, owner=) -> user id | None`: who calls a missed call back when its
    owner (missed.missed_owner) cannot now (None: the owner)."""
    if pick not in _missed_picks:
        _missed_picks.append(pick)
    return pick


def inbound_user_pick(*, row: CallSync, call: Call) -> None:
    """Before a ringing inbound call is registered: give it to the picked user, if any."""
    if row.user_id or call.direction != Call.Direction.IN or not call.operator_line:
        return
    for pick in _inbound_picks:
        user = pick(row=row, call=call)
        if user:
            CallSync.objects.filter(pk=row.pk, user_id__isnull=True).update(user_id=user)
            row.user_id = user
            return


def missed_owner_pick(*, row: CallSync, owner: int | None) -> int | None:
    for pick in _missed_picks:
        user = pick(row=row, owner=owner)
        if user:
            return user
    return owner


def on_click_failed(hook: ClickHook) -> ClickHook:
    """Declare `hook(row=, trigger=, code=) -> bool`: True takes the failed click over."""
    if hook not in _click_hooks:
        _click_hooks.append(hook)
    return hook


def on_line_check(check: LineCheck) -> LineCheck:
    """Declare `check(row=, line=) -> str`: a non-empty reason refuses to dial from the line."""
    if check not in _line_checks:
        _line_checks.append(check)
    return check


def click_line_refusal(*, row: CallSync, line: str) -> str:
    """Why not to dial a click from `line` ("" = dial); other dials are not asked."""
    if row.origin != CallSync.Origin.CLICK_TO_CALL:
        return ""
    for check in _line_checks:
        reason = check(row=row, line=line)
        if reason:
            return reason
    return ""


def on_dial_check(check: DialCheck) -> DialCheck:
    """Declare `check(row=) -> str`: a non-empty reason withholds a dial that is not a person's
    click (a campaign's number whose agent paused while the dial waited); the check settles
    whatever it owns, the dial is then skipped."""
    if check not in _dial_checks:
        _dial_checks.append(check)
    return check


def dial_refusal(*, row: CallSync) -> str:
    """Why not to place this dial now ("" = dial); clicks are asked by click_line_refusal."""
    if row.origin == CallSync.Origin.CLICK_TO_CALL:
        return ""
    for check in _dial_checks:
        reason = check(row=row)
        if reason:
            return reason
    return ""


def click_failed_takeover(*, row: CallSync, trigger: str, code: str) -> bool:
    """Ask the hooks; True when one took the click over (the row is then held, see above)."""
    if row.origin != CallSync.Origin.CLICK_TO_CALL or row.stage not in sync.OPEN_STAGES:
        return False
    for hook in _click_hooks:
        if hook(row=row, trigger=trigger, code=code):
            until = timezone.now() + timedelta(seconds=settings.CALL_DRAIN_CLAIM_S)
            CallSync.objects.filter(pk=row.pk, stage__in=sync.OPEN_STAGES).update(
                status_code=code, claim_token=HOLD, claimed_until=until
            )
            row.status_code = code
            logger.info("failed click taken over", extra={"trigger": trigger, "code": code})
            return True
    return False


def click_leg_failed(*, row: CallSync, call: Call) -> bool:
    """An ended click whose operator leg never rang: offer it to the hooks (True: taken)."""
    full = call.full_seconds or 0
    if call.direction != Call.Direction.OUT or call.state not in LEG_FAILED_STATES or full > 1:
        return False
    code = statuses.status_code_for(state=call.state, inbound=False)
    return click_failed_takeover(row=row, trigger=LINE_UNREACHABLE, code=code)


def click_release(*, row: CallSync, reason: str, **extra: Any) -> None:
    """The hook decided: store the FAILED_REASON that names the reroute and finish the call."""
    CallSync.objects.filter(pk=row.pk, claim_token=HOLD).update(
        failed_reason=reason, claim_token="", claimed_until=None
    )
    sync.job_enqueue(sync.KIND_SYNC, row, run_here=True)
