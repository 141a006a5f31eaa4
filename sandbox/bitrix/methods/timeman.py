"""The `timeman` scope: `timeman.status/open/pause/close/settings` (docs/agents.md §1.1).

One work day per user, kept in `portal["timeman"]["days"]`: OPENED, PAUSED or CLOSED as stored;
EXPIRED is what an OPENED or PAUSED day reads as once the portal's clock has passed midnight (in
the day's own time zone) since it was opened. The clock is the real one plus a per-portal
`clock_offset` that the `clock` control action sets, so tests can make a day expire at once.
With the module switched off (`installed` false) every `timeman.*` name is unknown to the REST
engine, as on a portal without the module (404 ERROR_METHOD_NOT_FOUND).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.bitrix.methods.common import user_by_id
from sandbox.bitrix.rest import HIDDEN, BxError, Call, method

#: Offset of the portal's default time zone (docs/agents.md §1.1 examples use +02:00).
DEFAULT_TZ = 7200

DEFAULT_SETTINGS: dict[str, Any] = {
    "UF_TIMEMAN": True,
    "UF_TM_FREE": False,
    "UF_TM_MAX_START": "09:15:00",
    "UF_TM_MIN_FINISH": "17:45:00",
    "UF_TM_MIN_DURATION": "08:00:00",
    "UF_TM_ALLOWED_DELTA": "00:15:00",
}


def tm_state(portal: dict[str, Any]) -> dict[str, Any]:
    """The portal's time-tracking state, created on first use (older stored portals lack it)."""
    state = portal.setdefault("timeman", {})
    state.setdefault("installed", True)
    state.setdefault("clock_offset", 0.0)
    state.setdefault("tz_offset", DEFAULT_TZ)
    state.setdefault("users", {})
    state.setdefault("days", {})
    return state


def now(portal: dict[str, Any]) -> float:
    return time.time() + float(tm_state(portal)["clock_offset"])


def user_settings(portal: dict[str, Any], user_id: str) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, **tm_state(portal)["users"].get(str(user_id), {})}


def zone(offset: int) -> timezone:
    return timezone(timedelta(seconds=int(offset)))


def atom(ts: float, offset: int) -> str:
    return datetime.fromtimestamp(ts, zone(offset)).isoformat(timespec="seconds")


def _local_date(ts: float, offset: int) -> Any:
    return datetime.fromtimestamp(ts, zone(offset)).date()


def hms(seconds: float) -> str:
    total = max(0, int(seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def day_status(portal: dict[str, Any], day: dict[str, Any] | None) -> str:
    if day is None or day["status"] == "CLOSED":
        return "CLOSED"
    if _local_date(now(portal), day["tz"]) > _local_date(day["start"], day["tz"]):
        # Opened before the start of the current calendar day and never closed (DOC).
        return "EXPIRED"
    return str(day["status"])


def search_status(portal: dict[str, Any], user_id: str) -> str:
    """`ASSIGNED_BY.TIMEMAN_STATUS` of searchCrmEntities (docs/agents.md §1.2)."""
    state = tm_state(portal)
    if not state["installed"]:
        return "NOT_INSTALLED"
    if not user_settings(portal, user_id)["UF_TIMEMAN"]:
        return "UNAVAILABLE"
    return day_status(portal, state["days"].get(str(user_id)))


def answer(portal: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The documented `timeman.status` object (docs/agents.md §1.1)."""
    day = tm_state(portal)["days"].get(str(user_id))
    status = day_status(portal, day)
    if day is None:
        offset = int(tm_state(portal)["tz_offset"])
        return {
            "STATUS": "CLOSED",
            "TIME_START": None,
            "TIME_FINISH": None,
            "DURATION": "00:00:00",
            "TIME_LEAKS": "00:00:00",
            "ACTIVE": True,
            "IP_OPEN": "",
            "IP_CLOSE": "",
            "LAT_OPEN": 0,
            "LON_OPEN": 0,
            "LAT_CLOSE": 0,
            "LON_CLOSE": 0,
            "TZ_OFFSET": offset,
        }
    closed = day["finish"] is not None
    result = {
        "STATUS": status,
        "TIME_START": atom(day["start"], day["tz"]),
        "TIME_FINISH": atom(day["finish"], day["tz"]) if closed else None,
        "DURATION": hms(day["finish"] - day["start"] - day["leaks"]) if closed else "00:00:00",
        "TIME_LEAKS": hms(day["leaks"]),
        "ACTIVE": bool(day.get("active", True)),
        "IP_OPEN": day.get("ip_open", ""),
        "IP_CLOSE": day.get("ip_close", ""),
        "LAT_OPEN": day.get("lat_open", 0),
        "LON_OPEN": day.get("lon_open", 0),
        "LAT_CLOSE": day.get("lat_close", 0),
        "LON_CLOSE": day.get("lon_close", 0),
        "TZ_OFFSET": day["tz"],
    }
    if status == "EXPIRED":
        finish = user_settings(portal, user_id)["UF_TM_MIN_FINISH"]
        started = datetime.fromtimestamp(day["start"], zone(day["tz"]))
        result["TIME_FINISH_DEFAULT"] = (
            f"{started.date().isoformat()}T{finish}" + atom(day["start"], day["tz"])[-6:]
        )
    return result


def target(call: Call) -> dict[str, Any]:
    """The user `USER_ID` names (default the caller), with the access check of DOC index."""
    raw = call.get("USER_ID")
    user = call.user if raw in (None, "") else user_by_id(call, str(raw).strip())
    if user is None:
        raise BxError("", "User not found")
    if user["ID"] != call.user["ID"] and not call.user["ADMIN"]:
        # Managing another employee's day needs the right to edit it (DOC index); the sandbox
        # grants it to administrators only. Code and text UNCONFIRMED (docs/sandbox.md).
        raise BxError("ACCESS_DENIED", "Access denied!", 403)
    return user


def parse_time(value: Any) -> datetime:
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BxError("WRONG_DATETIME", "Wrong datetime format") from exc
    if parsed.tzinfo is None:
        raise BxError("WRONG_DATETIME", "Wrong datetime format")
    return parsed


def _offset(moment: datetime) -> int:
    delta = moment.utcoffset()
    return int(delta.total_seconds()) if delta is not None else DEFAULT_TZ


def _need_report(call: Call, user: dict[str, Any]) -> None:
    # REPORT is required with TIME unless the user's schedule is free (docs/agents.md §1.1).
    if (
        not user_settings(call.portal, user["ID"])["UF_TM_FREE"]
        and not str(call.get("REPORT") or "").strip()
    ):
        raise BxError("ERROR_ARGUMENT", "Argument 'REPORT' is null or empty", argument="REPORT")


def _geo(call: Call, day: dict[str, Any], suffix: str) -> None:
    for name in ("LAT", "LON"):
        value = call.get(name)
        if value not in (None, ""):
            try:
                day[f"{name.lower()}_{suffix}"] = float(value)
            except (TypeError, ValueError):
                day[f"{name.lower()}_{suffix}"] = 0


def day_open(portal: dict[str, Any], user_id: str, at: float, offset: int | None = None) -> None:
    """Open, resume or reopen the day at `at` (the state change behind timeman.open)."""
    at = float(int(at))  # the time sheet keeps whole seconds
    days = tm_state(portal)["days"]
    day = days.get(str(user_id))
    status = day_status(portal, day)
    if status == "EXPIRED" or status == "OPENED":
        return
    if day is not None and status == "PAUSED":
        day["leaks"] += max(0.0, at - (day.get("paused_at") or at))
        day.update(status="OPENED", paused_at=None)
        return
    tz = int(tm_state(portal)["tz_offset"]) if offset is None else offset
    if day is not None and _local_date(day["start"], day["tz"]) == _local_date(at, day["tz"]):
        # Reopening today's closed day continues it; the closed gap counts as a break (DOC index).
        day["leaks"] += max(0.0, at - day["finish"])
        day.update(status="OPENED", finish=None, ip_close="")
        return
    days[str(user_id)] = {"status": "OPENED", "start": at, "finish": None, "leaks": 0.0, "tz": tz}


def day_pause(portal: dict[str, Any], user_id: str, at: float) -> None:
    at = float(int(at))
    day = tm_state(portal)["days"].get(str(user_id))
    if day is not None and day_status(portal, day) == "OPENED":
        day.update(status="PAUSED", paused_at=at)


def day_close(portal: dict[str, Any], user_id: str, at: float) -> None:
    at = float(int(at))
    day = tm_state(portal)["days"].get(str(user_id))
    if day is None or day["status"] == "CLOSED":
        return
    if _local_date(at, day["tz"]) != _local_date(day["start"], day["tz"]) or at < day["start"]:
        raise BxError("WRONG_DATETIME", "Day close date should correspond to the day open date")
    if day["status"] == "PAUSED":
        day["leaks"] += max(0.0, at - (day.get("paused_at") or at))
    day.update(status="CLOSED", finish=at, paused_at=None)


@method("timeman.status")
def timeman_status(call: Call) -> Any:
    return answer(call.portal, target(call)["ID"])


@method("timeman.open")
def timeman_open(call: Call) -> Any:
    user = target(call)
    day = tm_state(call.portal)["days"].get(user["ID"])
    at, offset = now(call.portal), None
    if call.get("TIME") not in (None, ""):
        moment = parse_time(call.get("TIME"))
        if day_status(call.portal, day) == "PAUSED":
            raise BxError("TIME", "Unable to set time, work day is paused")
        offset = _offset(moment)
        if moment.date() != _local_date(at, offset):
            raise BxError("WRONG_DATETIME", "Day open date should correspond to the current date")
        _need_report(call, user)
        at = moment.timestamp()
    day_open(call.portal, user["ID"], at, offset)
    _geo(call, tm_state(call.portal)["days"][user["ID"]], "open")
    return answer(call.portal, user["ID"])


@method("timeman.pause")
def timeman_pause(call: Call) -> Any:
    user = target(call)
    day_pause(call.portal, user["ID"], now(call.portal))
    return answer(call.portal, user["ID"])


@method("timeman.close")
def timeman_close(call: Call) -> Any:
    user = target(call)
    at = now(call.portal)
    if call.get("TIME") not in (None, ""):
        at = parse_time(call.get("TIME")).timestamp()
        _need_report(call, user)
    day_close(call.portal, user["ID"], at)
    day = tm_state(call.portal)["days"].get(user["ID"])
    if day is not None:
        _geo(call, day, "close")
    return answer(call.portal, user["ID"])


@method("timeman.settings")
def timeman_settings(call: Call) -> Any:
    user = target(call)
    result = dict(user_settings(call.portal, user["ID"]))
    result["UF_TIMEMAN"] = bool(result["UF_TIMEMAN"])
    result["UF_TM_FREE"] = bool(result["UF_TM_FREE"])
    if user["ID"] == call.user["ID"]:
        # ADMIN is given for the current user only: may they manage others' days (DOC).
        result["ADMIN"] = bool(call.user["ADMIN"])
    return result


def _module_missing(portal: dict[str, Any], name: str) -> bool:
    return name.startswith("timeman.") and not tm_state(portal)["installed"]


HIDDEN.append(_module_missing)
