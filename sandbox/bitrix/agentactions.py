"""The portal's control actions for agent status (docs/sandbox.md "Agents: work day, presence,
departments"): what an employee or admin does in a real portal that REST apps only see by
polling — clock in, pause, reopen, close the work day; come online or go offline; be deactivated;
head a department; an admin switching time tracking off for a user or the whole module — and
the portal clock, so a day left open can pass midnight in a test. Merged into actions.ACTIONS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.bitrix.methods import timeman
from sandbox.bitrix.methods.common import truthy
from sandbox.bitrix.methods.users import departments
from sandbox.bitrix.rest import BxError
from sandbox.httpcore import Response, json_response

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

WORKDAY_OPS = ("open", "pause", "reopen", "close")


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _user(portal: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any] | None:
    user_id = str(payload.get("user_id") or "")
    return next((u for u in portal["users"] if u["ID"] == user_id), None)


def _clock(portal: dict[str, Any]) -> dict[str, Any]:
    state = timeman.tm_state(portal)
    return {
        "now": timeman.atom(timeman.now(portal), int(state["tz_offset"])),
        "clock_offset": state["clock_offset"],
        "tz_offset": state["tz_offset"],
    }


def action_clock(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """Move the portal clock: `{"now": ATOM}`, `{"shift_days": 1}`, `{"shift_seconds": n}`,
    `{"reset": true}`; `tz_offset` (seconds) sets the portal's default time zone.
    """
    with app.store.lock:
        state = timeman.tm_state(portal)
        offset, tz = float(state["clock_offset"]), int(state["tz_offset"])
        try:
            if payload.get("reset"):
                offset = 0.0
            if payload.get("now") not in (None, ""):
                offset = timeman.parse_time(payload["now"]).timestamp() - time.time()
            offset += float(payload.get("shift_days") or 0) * 86400
            offset += float(payload.get("shift_seconds") or 0)
            tz = int(payload.get("tz_offset", tz))
        except BxError:
            return _error("now must be an ATOM date-time with an offset")
        except (TypeError, ValueError):
            return _error("shift_days, shift_seconds and tz_offset must be numbers")
        if not -14 * 3600 <= tz <= 14 * 3600:
            return _error("tz_offset must be within ±14 h, in seconds")
        state.update(clock_offset=offset, tz_offset=tz)
        app.store.touch()
        return json_response(_clock(portal))


def _force_close(portal: dict[str, Any], user_id: str) -> None:
    """Close a day the way an admin does in the time sheet: an expired day at its start day's
    last second, since a REST close must fall on the open date (docs/agents.md §1.1).
    """
    day = timeman.tm_state(portal)["days"].get(user_id)
    if day is None or day["status"] == "CLOSED":
        return
    started = datetime.fromtimestamp(day["start"], timeman.zone(day["tz"]))
    midnight = datetime.combine(started.date() + timedelta(days=1), datetime.min.time())
    last = midnight.replace(tzinfo=started.tzinfo).timestamp() - 1
    timeman.day_close(portal, user_id, min(timeman.now(portal), last))


def action_workday(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`{"user_id": 2, "op": "open|pause|reopen|close"}`: the user clicks the work-day button."""
    op = str(payload.get("op") or "")
    if op not in WORKDAY_OPS:
        return _error(f"op must be one of {', '.join(WORKDAY_OPS)}")
    with app.store.lock:
        user = _user(portal, payload)
        if user is None:
            return _error(f"no user {payload.get('user_id')!r} on this portal")
        at = timeman.now(portal)
        if op in ("open", "reopen"):
            timeman.day_open(portal, user["ID"], at)
        elif op == "pause":
            timeman.day_pause(portal, user["ID"], at)
        else:
            _force_close(portal, user["ID"])
        app.store.touch()
        return json_response(timeman.answer(portal, user["ID"]))


def action_user_state(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`{"user_id": 2, "online": false, "active": false, "timeman": false, "free": true,
    "departments": [1, 2]}`: presence, deactivation, time tracking and schedule per user.
    """
    with app.store.lock:
        user = _user(portal, payload)
        if user is None:
            return _error(f"no user {payload.get('user_id')!r} on this portal")
        if "departments" in payload:
            try:
                wanted = [int(d) for d in payload["departments"]]
            except (TypeError, ValueError):
                return _error("departments must be a list of department ids")
            ids = {int(d["ID"]) for d in departments(portal)}
            if not set(wanted) <= ids:
                return _error(f"unknown departments {sorted(set(wanted) - ids)}")
            user["UF_DEPARTMENT"] = wanted
        if "online" in payload:
            user["IS_ONLINE"] = "Y" if truthy(payload["online"], True) else "N"
        if "active" in payload:
            user["ACTIVE"] = truthy(payload["active"], True)
        settings = timeman.tm_state(portal)["users"].setdefault(user["ID"], {})
        if "timeman" in payload:
            settings["UF_TIMEMAN"] = truthy(payload["timeman"], True)
        if "free" in payload:
            settings["UF_TM_FREE"] = truthy(payload["free"], False)
        app.store.touch()
        return json_response(
            {
                "ID": user["ID"],
                "ACTIVE": user["ACTIVE"],
                "IS_ONLINE": user.get("IS_ONLINE", "Y"),
                "UF_DEPARTMENT": user.get("UF_DEPARTMENT", [1]),
                **timeman.user_settings(portal, user["ID"]),
            }
        )


def action_department(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`{"id": 2, "name": "Sales", "parent": 1, "head": 2}`: create or change a department;
    `"head": null` (or 0) leaves it without a head.
    """
    with app.store.lock:
        items = departments(portal)
        raw: Any = payload.get("id")
        if raw in (None, ""):
            raw = max((int(d["ID"]) for d in items), default=0) + 1
        try:
            dept_id = str(int(raw))
        except (TypeError, ValueError):
            return _error("id must be a number")
        record = next((d for d in items if d["ID"] == dept_id), None)
        if record is None:
            record = {"ID": dept_id, "NAME": f"Department {dept_id}", "SORT": 500, "UF_HEAD": "0"}
            record["PARENT"] = "1"
            items.append(record)
        if payload.get("name"):
            record["NAME"] = str(payload["name"])
        if payload.get("parent") not in (None, ""):
            if not any(d["ID"] == str(payload["parent"]) for d in items):
                return _error(f"no department {payload['parent']!r}")
            record["PARENT"] = str(payload["parent"])
        if "head" in payload:
            head = str(payload.get("head") or "0")
            if head != "0" and not any(u["ID"] == head for u in portal["users"]):
                return _error(f"no user {head!r} on this portal")
            record["UF_HEAD"] = head
        app.store.touch()
        return json_response(record, 201)


def action_timeman_module(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    """`{"installed": false}`: the portal without the time-tracking module (timeman.* → 404)."""
    if "installed" not in payload:
        return _error("installed (true/false) is required")
    with app.store.lock:
        timeman.tm_state(portal)["installed"] = truthy(payload["installed"], True)
        app.store.touch()
        return json_response({"installed": timeman.tm_state(portal)["installed"]})


SEED_MAX = 5000


def action_users_seed(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`{"count": 200, "first_id": 3, "inner_from": 201, "name": "Agent {n}"}`: many
    non-admin users at once (agents for a benchmark), replacing any with the same IDs.
    """
    try:
        count = int(payload.get("count") or 0)
        first = int(payload.get("first_id") or len(portal["users"]) + 1)
        inner = int(payload.get("inner_from") or 0)
    except (TypeError, ValueError):
        return _error("count, first_id and inner_from must be numbers")
    if not 1 <= count <= SEED_MAX or first < 1 or inner < 0:
        return _error(f"count must be within 1..{SEED_MAX}, first_id ≥ 1, inner_from ≥ 0")
    name = str(payload.get("name") or "Agent {n}")
    made = [
        app.world._user(
            {
                "ID": str(first + i),
                "NAME": name.replace("{n}", str(first + i)),
                "UF_PHONE_INNER": str(inner + i) if inner else "",
                "ADMIN": False,
            },
            first + i,
        )
        for i in range(count)
    ]
    ids = {u["ID"] for u in made}
    with app.store.lock:
        portal["users"] = [u for u in portal["users"] if u["ID"] not in ids] + made
        app.store.touch()
    return json_response({"ids": [u["ID"] for u in made]}, 201)


ACTIONS: dict[str, Callable[[PortalApp, dict[str, Any], dict[str, Any]], Response]] = {
    "clock": action_clock,
    "workday": action_workday,
    "user-state": action_user_state,
    "department": action_department,
    "timeman-module": action_timeman_module,
    "users-seed": action_users_seed,
}
