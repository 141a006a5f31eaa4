"""Inner lines as Unitalk's PBX sees them, for issue 15's fallback routing (docs/agents.md §6
"Unitalk" 1, 5, 6): a line is registered, unregistered or DND; `phones/directCall` rings the
operator's line first (the **operator leg**) and only then dials the client (the **client
leg**), so an unregistered line ends the call `CHANUNAVAIL` with `secondsFullTime` 0 and the
client never rings; a line with a live call can refuse a second `directCall`; and the answer to
a `directCall` can be lost after the call was placed.

The states, messages and Q.850 causes are the sandbox's choices (UNCONFIRMED, docs/sandbox.md),
kept in the tables below. Live calls per line are runtime-only, like the request budget.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sandbox.httpcore import json_response

if TYPE_CHECKING:
    from sandbox.httpcore import Response
    from sandbox.unitalk.app import UnitalkApp

LINE_STATES = ("registered", "unregistered", "dnd")
#: Operator-leg results: (state, Q.850 cause, secondsFullTime) — None rings the client next.
OPERATOR_LEGS: dict[str, tuple[str, int, int] | None] = {
    "answer": None,
    "noanswer": ("NOANSWER", 19, -1),  # -1: the operator rang for `ring_time` seconds
    "busy": ("BUSY", 17, 0),
    "chanunavail": ("CHANUNAVAIL", 20, 0),
}
#: What a line's state does to the operator leg.
LINE_LEGS = {"unregistered": "chanunavail", "dnd": "busy"}
BUSY_MODES = ("allow", "reject", "busy_leg")
BUSY_MESSAGE = "Line is busy"  # UNCONFIRMED wording


class LiveCalls:
    """Calls in progress per (key, line), counted from start to CALL_END (runtime-only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[tuple[str, str], int] = {}

    def clear(self) -> None:
        with self._lock:
            self._live.clear()

    def begin(self, key: str, line: str, *, unless_busy: bool = False) -> Any:
        """Count a call on the line; returns the `on_end` callback that uncounts it, or None
        when `unless_busy` and the line already has one (checked and counted atomically).
        """
        with self._lock:
            if unless_busy and self._live.get((key, line), 0) > 0:
                return None
            self._live[(key, line)] = self._live.get((key, line), 0) + 1

        def end(_call: dict[str, Any]) -> None:
            with self._lock:
                left = self._live.get((key, line), 1) - 1
                if left > 0:
                    self._live[(key, line)] = left
                else:
                    self._live.pop((key, line), None)

        return end

    def busy(self, key: str, line: str) -> bool:
        with self._lock:
            return self._live.get((key, line), 0) > 0

    def listing(self, key: str) -> dict[str, int]:
        with self._lock:
            return {line: n for (k, line), n in self._live.items() if k == key}


def line_state(project: dict[str, Any], line: str) -> str:
    return str(project.get("line_state", {}).get(str(line), "registered"))


def operator_leg(
    app: UnitalkApp, project: dict[str, Any], line: str
) -> tuple[str, int, int] | None:
    """How the operator leg of a directCall from `line` ends (None: answered, dial the client)."""
    state = line_state(project, line)
    settings = app.settings(project)
    name = LINE_LEGS.get(state) or str(settings["operator_outcome"])
    leg = OPERATOR_LEGS.get(name)
    if leg is None:
        return None
    status, cause, full = leg
    return status, cause, int(settings["ring_time"]) if full < 0 else full


def control(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`POST /_sandbox/lines {line?, state?}`: set a line registered/unregistered/dnd (the
    operator's softphone goes offline, or they press DND); always answers every line's state
    and its live calls.
    """
    with app.store.lock:
        known = [str(u["line"]) for u in project["users"] if u.get("line")]
        if payload.get("line") is not None or payload.get("state") is not None:
            line, state = str(payload.get("line") or ""), str(payload.get("state") or "").lower()
            if line not in known:
                return json_response({"error": f"no inner line {line!r}"}, 400)
            if state not in LINE_STATES:
                return json_response({"error": f"state must be one of {LINE_STATES}"}, 400)
            project.setdefault("line_state", {})[line] = state
            app.store.touch()
        states = {line: line_state(project, line) for line in known}
    return json_response({"lines": states, "live": app.live.listing(project["api_key"])})
