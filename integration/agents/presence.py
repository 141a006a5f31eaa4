"""The effective state of an agent, computed from all its inputs (docs/agents.md §5, §1.3).

A pure function: no database, no clock of its own. Order matters and is the contract:
no line → NO_LINE; user deleted or deactivated → INACTIVE; a live call → BUSY (a pause never
cuts a call); wrap-up → WRAP_UP; the agent's own toggle; sync failures; a failing line; then
Bitrix24's rule (docs/agents.md §1.3): where time tracking is on, the work day must be OPENED;
where it is off or the module is missing, the toggle and the online state decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from integration.agents.models import Reason, State, Toggle

#: timeman.status STATUS values (docs/agents.md §1.1) and the pause reason each one means.
DAY_REASONS = {
    "PAUSED": Reason.DAY_PAUSED,
    "CLOSED": Reason.DAY_CLOSED,
    "EXPIRED": Reason.DAY_EXPIRED,
}
DAY_OPEN = "OPENED"
#: searchCrmEntities' TIMEMAN_STATUS extras (docs/agents.md §1.2): tracking off / module missing.
TRACKING_OFF = "UNAVAILABLE"
MODULE_MISSING = "NOT_INSTALLED"


@dataclass(frozen=True)
class Inputs:
    now: datetime
    has_line: bool = True
    user_missing: bool = False
    #: user.get ACTIVE; None while unknown (treated as active).
    user_active: bool | None = True
    #: user.get IS_ONLINE; None while unknown (treated as online).
    user_online: bool | None = True
    live_call: bool = False
    wrap_up_until: datetime | None = None
    toggle: str = Toggle.AVAILABLE
    #: UF_TIMEMAN; None while unknown (Bitrix24's default: tracking on).
    time_tracking: bool | None = None
    timeman_missing: bool = False
    #: timeman.status STATUS as read ("" before the first reading).
    timeman_status: str = ""
    line_failing: bool = False
    push_failed: bool = False
    #: Bitrix24 could not be read for the allowed number of periods.
    stale: bool = False


@dataclass(frozen=True)
class Presence:
    state: str
    reason: str = ""
    #: Why, in data words (shown next to the translated reason; logged on the transition).
    detail: str = ""


def _paused(reason: str, detail: str = "") -> Presence:
    return Presence(State.PAUSED, reason, detail)


def tracking_applies(inputs: Inputs) -> bool:
    status = inputs.timeman_status.upper()
    if inputs.timeman_missing or status == MODULE_MISSING:
        return False
    if status == TRACKING_OFF:
        return False
    return inputs.time_tracking is not False


def presence_compute(inputs: Inputs) -> Presence:
    """The one state the app, the dialer and the router use. Never raises."""
    if not inputs.has_line:
        return Presence(State.NO_LINE, "", "no Unitalk line mapped")
    if inputs.user_missing:
        return Presence(State.INACTIVE, "", "user not found in Bitrix24")
    if inputs.user_active is False:
        return Presence(State.INACTIVE, "", "user deactivated in Bitrix24")
    if inputs.live_call:
        return Presence(State.BUSY, "", "live Unitalk call")
    if inputs.wrap_up_until is not None and inputs.wrap_up_until > inputs.now:
        return Presence(State.WRAP_UP, "", "after a call")
    if inputs.toggle == Toggle.OFFLINE:
        return _paused(Reason.MANUAL, "set offline in the app")
    if inputs.toggle == Toggle.BREAK:
        return _paused(Reason.BREAK, "break in the app")
    if inputs.push_failed:
        return _paused(Reason.SYNC_FAILED, "Unitalk status not updated")
    if inputs.stale:
        return _paused(Reason.SYNC_FAILED, "Bitrix24 status not read")
    if inputs.line_failing:
        return _paused(Reason.LINE_FAILING, "operator leg failed 3 times")
    if tracking_applies(inputs):
        status = inputs.timeman_status.upper()
        if status == DAY_OPEN:
            return Presence(State.AVAILABLE, "", "work day open")
        if status in DAY_REASONS:
            return _paused(DAY_REASONS[status], f"work day {status}")
        if status:
            # An answer docs/agents.md §1.1 does not list: not open, so not available.
            return _paused(Reason.DAY_CLOSED, f"unknown work day status {status[:32]}")
        if inputs.time_tracking is True:
            return _paused(Reason.DAY_CLOSED, "work day not read yet")
    if inputs.user_online is False:
        return _paused(Reason.OFFLINE, "not online in Bitrix24")
    return Presence(
        State.AVAILABLE, "", "time tracking off" if not tracking_applies(inputs) else ""
    )
