"""The operator-status API that Unitalk may or may not have (docs/agents.md §3: UNCONFIRMED, one
low-reliability source): `phones/inner/setStatus {number, status}` and a read `phones/inner
{number?}`. **Absent by default**: unless the `status_api` setting is on (globally or per key)
both answer exactly as an unknown path does (HTTP 404 `{"status":"Error","message":"Method not
found"}`, sandbox/unitalk/app.py). When on, the `status_api_fault` setting breaks both on purpose
(`error` envelope, `500`/`502`/`503`, `timeout`, `slow`), so the app's sync_failed fallback can be
exercised; `/_sandbox/faults` on the same paths still gives partial rates.

Every name here is invented or guessed and stays in the tables below (docs/sandbox.md).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sandbox.httpcore import Response, json_response

if TYPE_CHECKING:
    from sandbox.unitalk.app import UnitalkApp

SET_PATH = "phones/inner/setStatus"  # UNCONFIRMED
GET_PATH = "phones/inner"  # UNCONFIRMED
#: The values setStatus accepts (UNCONFIRMED; the app's names.py sends these).
STATUSES = ("ONLINE", "PAUSE", "OFFLINE")
DEFAULT_STATUS = "ONLINE"  # a line nobody set reads as online (UNCONFIRMED)
FAULTS = ("", "error", "500", "502", "503", "timeout", "slow")
LOG_MAX = 500
MESSAGES = {  # UNCONFIRMED wording
    "absent": "Method not found",
    "no_line": "Inner line not found",
    "no_number": "Number is empty",
    "bad_status": "Invalid status",
    "fault": "Internal error",
}


def _error(message: str, status: int = 200) -> Response:
    return json_response({"status": "Error", "message": message}, status)


def lines(project: dict[str, Any]) -> dict[str, str]:
    """Each inner line of the project with its operator status."""
    stored = project.setdefault("operator_status", {})
    return {
        str(u["line"]): stored.get(str(u["line"]), DEFAULT_STATUS)
        for u in project["users"]
        if u.get("line")
    }


def record(project: dict[str, Any], number: str, status: str, source: str) -> None:
    project.setdefault("operator_status", {})[number] = status
    log = project.setdefault("operator_status_log", [])
    log.append(
        {"number": number, "status": status, "source": source, "at": datetime.now().isoformat()}
    )
    del log[:-LOG_MAX]


def _gate(app: UnitalkApp, project: dict[str, Any]) -> Response | None:
    """None to carry on; else the answer of an absent API or of the configured fault."""
    settings = app.settings(project)
    if not settings["status_api"]:
        # The same answer as any path Unitalk does not know (app.route).
        return _error(MESSAGES["absent"], 404)
    fault = str(settings["status_api_fault"] or "")
    seconds = float(settings["status_api_fault_seconds"])
    if fault == "error":
        return _error(MESSAGES["fault"])
    if fault.isdigit():
        return _error(MESSAGES["fault"], int(fault))
    if fault == "timeout":
        time.sleep(seconds)
        return Response(drop="down")
    if fault == "slow":
        time.sleep(seconds)
    return None


def _number(payload: dict[str, Any]) -> str:
    return "".join(ch for ch in str(payload.get("number") or "") if ch.isdigit())


def api_status_set(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    gated = _gate(app, project)
    if gated is not None:
        return gated
    number = _number(payload)
    status = str(payload.get("status") or "").strip().upper()
    if not number:
        return _error(MESSAGES["no_number"])
    with app.store.lock:
        if number not in lines(project):
            return _error(MESSAGES["no_line"])
        if status not in STATUSES:
            return _error(MESSAGES["bad_status"])
        record(project, number, status, "api")
        app.store.touch()
    return json_response({"status": "Success"})


def api_status_get(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    gated = _gate(app, project)
    if gated is not None:
        return gated
    number = _number(payload)
    with app.store.lock:
        known = lines(project)
    if number and number not in known:
        return _error(MESSAGES["no_line"])
    phones = [
        {"number": line, "status": status}
        for line, status in known.items()
        if not number or line == number
    ]
    return json_response({"status": "Success", "phones": phones})


def control(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`POST /_sandbox/operator-status {number?, status?}`: the operator changes their status in
    the Unitalk cabinet (with both), or read every line's status and the log of changes.
    Works whether or not the API is switched on (the cabinet always has it).
    """
    with app.store.lock:
        if payload.get("number") is not None or payload.get("status") is not None:
            number, status = _number(payload), str(payload.get("status") or "").upper()
            if number not in lines(project):
                return json_response({"error": f"no inner line {payload.get('number')!r}"}, 400)
            if status not in STATUSES:
                return json_response({"error": f"status must be one of {', '.join(STATUSES)}"}, 400)
            record(project, number, status, "cabinet")
            app.store.touch()
        return json_response(
            {
                "enabled": bool(app.settings(project)["status_api"]),
                "fault": app.settings(project)["status_api_fault"],
                "lines": lines(project),
                "log": list(project.get("operator_status_log", [])),
            }
        )
