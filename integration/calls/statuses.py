"""The ONE table from a Unitalk call's final state to Bitrix24's `STATUS_CODE`.

Unitalk states are SECONDARY ("documented values", docs/unitalk.md §4.3; names in
integration/unitalk/names.py); Bitrix24 codes (docs/bitrix24.md §5.3) are SIP-like: 200 success,
304 missed, 603 declined, 486 busy, 484/503 direction unavailable, 480 temporarily unavailable,
402 no funds, 423 blocked, 404 invalid number, OTHER undefined. An unknown state is not a
conversation.
"""

from __future__ import annotations

from integration.unitalk import names

SUCCESS = "200"
MISSED = "304"
OTHER = "OTHER"

STATUS_FOR_STATE: dict[str, str] = {
    names.STATE_ANSWER: SUCCESS,
    "NOANSWER": MISSED,
    "BUSY": "486",
    "BUSYOUT": "486",
    "FAIL": "480",
    "CHANUNAVAIL": "480",
    "UNREACHABLE": "480",
    "NOMONEY": "402",
    "WRONGDIR": "484",
    "BLOCKED": "423",
    "NOT_EXIST": "404",
    # Still "dialing" when it ended: nobody ever picked up.
    "DIALING": MISSED,
}

# Click-to-call that never reached Unitalk: why we finish the portal's call ourselves.
DIAL_NO_LINE = "403"  # the user has no Unitalk line: not allowed to dial through us
DIAL_REFUSED = "503"  # Unitalk refused the request for good: direction unavailable
DIAL_GAVE_UP = "480"  # Unitalk unreachable past the dial horizon: temporarily unavailable


def status_code_for(*, state: str, inbound: bool) -> str:
    """STATUS_CODE for `finish`. An inbound call nobody answered is missed (304), whatever the
    reason, so Bitrix24 files it in its missed-calls report and fires the missed-call robot."""
    if state == names.STATE_ANSWER:
        return SUCCESS
    if inbound:
        return MISSED
    return STATUS_FOR_STATE.get(state, OTHER)
