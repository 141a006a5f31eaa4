"""The Unitalk API methods under `/api/<path>`: `phones/directCall`, `calls/originateNew`,
`history/get`, `users/list`, `autodial/action` (docs/unitalk.md §3, §7), and the answer envelope:
errors are HTTP 200 + `{"status":"Error","message":...}` (docs/unitalk.md §2.4). Every invented
detail (action names, messages) sits in a table here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.httpcore import Response, json_response
from sandbox.unitalk import lines, operators
from sandbox.unitalk.calls import DATE_FORMAT, call_start

if TYPE_CHECKING:
    from sandbox.unitalk.app import UnitalkApp


def error(message: str, status: int = 200, data: Any = None) -> Response:
    body: dict[str, Any] = {"status": "Error", "message": message}
    if data is not None:
        body["data"] = data
    return json_response(body, status)


def success(**extra: Any) -> Response:
    return json_response({"status": "Success", **extra})


# ---- API methods ------------------------------------------------------------------------------
def _users(project: dict[str, Any]) -> list[dict[str, Any]]:
    return list(project["users"])


def api_direct_call(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    sip = str(payload.get("sip") or "")
    number = "".join(ch for ch in str(payload.get("number") or "") if ch.isdigit())
    if not sip or not any(str(u["line"]) == sip for u in _users(project)):
        return error("Inner line not found")  # UNCONFIRMED wording
    if not number:
        return error("Number is empty")
    # Issue 15's line knobs (lines.py): a busy line, the operator leg, a lost answer.
    settings = app.settings(project)
    mode = settings["busy_mode"]
    # None: the line has a live call (never under `allow`); a busy leg does not occupy it.
    on_end = app.live.begin(project["api_key"], sip, unless_busy=mode != "allow")
    if on_end is None and mode == "reject":
        return error(lines.BUSY_MESSAGE)
    leg = lines.OPERATOR_LEGS["busy"] if on_end is None else None
    call_start(
        app,
        project,
        direction="OUT",
        caller=sip,
        callee=[number],
        meta=payload.get("meta"),
        on_end=on_end,
        operator=leg or lines.operator_leg(app, project, sip),
    )
    lost = float(settings["answer_lost"])
    if lost > 0 and app.rng.random() < lost:
        return Response(drop="down")  # the call was placed; its answer never arrives
    return success()


def api_originate(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    if str(payload.get("messageType") or "").upper() == "SMS":
        if not payload.get("to") or not payload.get("text"):
            return error("to and text are required")
        return success()
    phone = "".join(ch for ch in str(payload.get("phone") or "") if ch.isdigit())
    if not phone:
        return error("Phone is null")
    meta = payload.get("meta")
    if meta is not None and (not isinstance(meta, str) or len(meta) > 1000):
        return error("Meta must be a string up to 1000 characters")
    outer = payload.get("outerLine")
    call_start(
        app,
        project,
        direction="OUT",
        caller=str(outer or app.settings(project)["outer_number"]),
        callee=[phone],
        meta=meta,
        outer=outer,
        source="API",
    )
    return success()


def _parse_date(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), DATE_FORMAT)
    except ValueError:
        return None


def api_history(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    if not payload:
        return error("Query null")
    date_from = _parse_date(payload.get("dateFrom"))
    if date_from is None:
        return error("Wrong FROM date")
    date_to = _parse_date(payload.get("dateTo"))
    if date_to is None:
        return error("Wrong TO date")
    settings = app.settings(project)
    cap = int(settings["history_cap"])
    try:
        raw_limit = payload.get("limit")
        limit = cap if raw_limit is None else int(raw_limit)
        offset = int(payload.get("offset") or 0)
    except (TypeError, ValueError):
        return error("Wrong limit or offset")
    if offset < 0:
        return error("Offset is less than 0")
    if limit < 1:
        return error(f"Limit range is 1-{cap}")
    flt = payload.get("filter") or {}
    if not isinstance(flt, dict):
        return error("Wrong filter")
    with app.store.lock:
        calls = [
            c
            for c in app.store.data["unitalk"]["calls"]
            if c["project"] == project["api_key"]
            and date_from <= datetime.strptime(c["date"], DATE_FORMAT) <= date_to
        ]
    calls = [c for c in calls if _history_match(c, flt, calls)]
    calls.sort(key=lambda c: (c["date"], c["dbid"]), reverse=True)
    page = calls[offset : offset + min(limit, cap)]
    warning = None
    if limit > cap and settings["history_warning"] and len(calls) - offset > cap:
        warning = f"Result is limited to {cap} calls"
    hidden = {"project", "uniqueid", "started_at", "ended_at"}
    return json_response(
        {
            "count": len(calls),
            "calls": [{k: v for k, v in c.items() if k not in hidden} for c in page],
            "warning": warning,
        }
    )


def _history_match(call: dict[str, Any], flt: dict[str, Any], calls: list[dict[str, Any]]) -> bool:
    if "direction" in flt and call["direction"] != str(flt["direction"]).upper():
        return False
    if "answered" in flt and (call["state"] == "ANSWER") != bool(flt["answered"]):
        return False
    if "lost" in flt:
        lost = (
            call["direction"] == "IN"
            and call["state"] != "ANSWER"
            and not any(
                c["direction"] == "OUT"
                and c["state"] == "ANSWER"
                and call["from"] in c["to"]
                and c["date"] > call["date"]
                for c in calls
            )
        )
        if lost != bool(flt["lost"]):
            return False
    for key in ("from", "outerNumber"):
        if key in flt and isinstance(flt[key], list) and call[key] not in flt[key]:
            return False
    wanted_to = flt.get("to")
    return not isinstance(wanted_to, list) or bool(set(call["to"]) & set(wanted_to))


def api_users(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    return json_response({"users": _users(project)})


# ---- autodialer (every action name in this one table; only GET_WITH_DATA is confirmed) --------
def _dialers(app: UnitalkApp, project: dict[str, Any]) -> dict[str, Any]:
    dialers = app.store.data["unitalk"]["autodialers"].setdefault(project["api_key"], {})
    if not dialers:
        dialers["1"] = {"id": 1, "name": "Default autodialer", "state": "STOPPED", "numbers": []}
    return dialers


def _dialer(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]):
    return _dialers(app, project).get(str(payload.get("id") or ""))


def ad_get_with_data(app, project, payload):
    with app.store.lock:
        dialers = list(_dialers(app, project).values())
    return json_response(
        {
            "autodialers": dialers,
            "audios": [{"id": 1, "name": "greeting.wav", "type": "API"}],
            "outerLines": [app.settings(project)["outer_number"]],
            "groups": [{"id": 1, "name": app.settings(project)["group_name"]}],
        }
    )


def ad_add_numbers(app, project, payload):
    numbers = payload.get("numbers")
    if not isinstance(numbers, list) or not numbers:
        return error("Numbers are empty")
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        for item in numbers:
            phone = item.get("phone") if isinstance(item, dict) else item
            meta = item.get("meta") if isinstance(item, dict) else None
            dialer["numbers"].append({"phone": str(phone), "meta": meta, "state": "WAITING"})
        app.store.touch()
    return success(added=len(numbers))


def ad_delete_numbers(app, project, payload):
    phones = {str(p) for p in payload.get("numbers") or []}
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["numbers"] = [n for n in dialer["numbers"] if n["phone"] not in phones]
        app.store.touch()
    return success()


def ad_start(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["state"] = "RUNNING"
        waiting = [n for n in dialer["numbers"] if n["state"] == "WAITING"]
        for number in waiting:
            number["state"] = "CALLING"
        app.store.touch()

    def ended(number: dict[str, Any]):
        def mark(call: dict[str, Any]) -> None:
            with app.store.lock:
                number["state"] = call["state"]
                number["callId"] = call["id"]
                if all(n["state"] not in ("WAITING", "CALLING") for n in dialer["numbers"]):
                    dialer["state"] = "FINISHED"
                app.store.touch()

        return mark

    for number in waiting:
        call_start(
            app,
            project,
            direction="OUT",
            caller=app.settings(project)["outer_number"],
            callee=[number["phone"]],
            meta=number["meta"],
            source="AUTODIAL",
            on_end=ended(number),
        )
    return success(calling=len(waiting))


def ad_stop(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["state"] = "STOPPED"
        app.store.touch()
    return success()


def ad_calls_history(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        items = [dict(n) for n in dialer["numbers"]]
    return json_response({"items": items})


AUTODIAL_ACTIONS = {
    "GET_WITH_DATA": ad_get_with_data,
    "ADD_NUMBERS": ad_add_numbers,
    "DELETE_NUMBERS": ad_delete_numbers,
    "START": ad_start,
    "STOP": ad_stop,
    "GET_CALLS_HISTORY": ad_calls_history,
}


def api_autodial(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    action = AUTODIAL_ACTIONS.get(str(payload.get("action") or "").upper())
    if action is None:
        return error("Unknown action", 200, sorted(AUTODIAL_ACTIONS))
    return action(app, project, payload)


API = {
    "phones/directCall": api_direct_call,
    "calls/originateNew": api_originate,
    "history/get": api_history,
    "users/list": api_users,
    "autodial/action": api_autodial,
    # Absent unless the `status_api` setting is on (docs/agents.md §3, UNCONFIRMED).
    operators.SET_PATH: operators.api_status_set,
    operators.GET_PATH: operators.api_status_get,
}
