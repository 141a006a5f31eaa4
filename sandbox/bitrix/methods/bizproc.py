"""The `bizproc` scope's automation rules: `bizproc.robot.add/update/list/delete`,
`bizproc.event.send`, and what a portal POSTs to a robot's HANDLER when the robot runs.

DOC `api-reference/bizproc/bizproc-robot/*.md`; SRC `bizproc/lib/restservice.php` (validation,
texts) and `bizproc/activities/.../restactivity.php` (the handler request). docs/agents.md §2.2.

- The robot methods work only with an application token ("Application context required" for
  an inbound webhook) and only for an administrator ("Access denied!"), both 403 ACCESS_DENIED.
- Parameter keys are upper-cased, except the property names inside PROPERTIES and
  RETURN_PROPERTIES (SRC prepareActivityData).
- `bizproc.event.send` needs the run's `event_token`; an unknown or forged one is 403
  ACCESS_DENIED "Access denied!". Any user may send it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from sandbox.bitrix.methods.common import check_handler_url, require_admin
from sandbox.bitrix.rest import BxError, Call, method

CODE = re.compile(r"^[a-z0-9.\-_]+$", re.IGNORECASE)
PROPERTY_KEY = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)
#: The BizProc document a robot runs on, per CRM kind (DOCUMENT_TYPE values of robot.add DOC).
DOCUMENTS = {"LEAD": "CCrmDocumentLead", "DEAL": "CCrmDocumentDeal"}
FAILURE = "ERROR_ACTIVITY_VALIDATION_FAILURE"


def robots(portal: dict[str, Any]) -> dict[str, Any]:
    return portal.setdefault("robots", {})


def robot_runs(portal: dict[str, Any]) -> list[dict[str, Any]]:
    return portal.setdefault("robot_runs", [])


def _upper(data: Any, keep: bool = False) -> Any:
    if not isinstance(data, dict):
        return data
    return {
        (k if keep else str(k).upper()): _upper(v, str(k).upper() in ("PROPERTIES", "RETURN_PROPERTIES", "OPTIONS"))
        for k, v in data.items()
    }  # fmt: skip


def _app_admin(call: Call) -> dict[str, Any]:
    if not call.token:
        raise BxError("ACCESS_DENIED", "Application context required", 403)
    require_admin(call)
    params = {k: v for k, v in call.params.items() if not k.startswith("_")}
    return _upper(params)


def _code(code: Any) -> str:
    if not code:
        raise BxError(FAILURE, "Empty activity code!")
    if not isinstance(code, str) or not CODE.match(code):
        raise BxError(FAILURE, "Wrong activity code!")
    return code


def _properties(properties: Any) -> dict[str, Any]:
    if not isinstance(properties, dict):
        raise BxError(FAILURE, "Wrong properties array!")
    for key, prop in properties.items():
        if not PROPERTY_KEY.match(str(key)):
            raise BxError(FAILURE, f"Wrong property key ({key})!")
        if not isinstance(prop, dict) or not prop.get("NAME"):
            raise BxError(FAILURE, f"Empty property NAME ({key})!")
    return properties


def _user_id(raw: Any) -> int:
    # PHP's (int) cast: anything that is not a number is 0, "no user of its own" (SRC add).
    text = str(raw or "").strip()
    return int(text) if text.isdigit() else 0


def _handler(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise BxError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    check_handler_url(url)
    return url


@method("bizproc.robot.add")
def robot_add(call: Call) -> Any:
    data = _app_admin(call)
    if not data:
        raise BxError(FAILURE, "Empty data!")
    code = _code(data.get("CODE"))
    handler = _handler(data.get("HANDLER"))
    if not data.get("NAME"):
        raise BxError(FAILURE, "Empty activity NAME!")
    for key in ("PROPERTIES", "RETURN_PROPERTIES"):
        if key in data:
            _properties(data[key])
    if "FILTER" in data and not isinstance(data["FILTER"], dict | list):
        raise BxError(FAILURE, "Wrong activity FILTER!")
    if code in robots(call.portal):
        raise BxError("ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
    use_placement = "Y" if data.get("USE_PLACEMENT") == "Y" else "N"
    if use_placement == "Y":
        _handler(data.get("PLACEMENT_HANDLER"))
    robots(call.portal)[code] = {
        "CODE": code,
        "HANDLER": handler,
        "NAME": data["NAME"],
        "DESCRIPTION": data.get("DESCRIPTION") or "",
        "AUTH_USER_ID": _user_id(data.get("AUTH_USER_ID")),
        "USE_SUBSCRIPTION": str(data.get("USE_SUBSCRIPTION") or ""),
        "PROPERTIES": data.get("PROPERTIES") or {},
        "RETURN_PROPERTIES": data.get("RETURN_PROPERTIES") or {},
        "DOCUMENT_TYPE": data.get("DOCUMENT_TYPE"),
        "FILTER": data.get("FILTER"),
        "USE_PLACEMENT": use_placement,
        "PLACEMENT_HANDLER": data.get("PLACEMENT_HANDLER") or "",
        "APP_ID": call.portal["client_id"],
    }
    return True


def _existing(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    code = _code(data.get("CODE"))
    robot = robots(call.portal).get(code)
    if robot is None:
        raise BxError("ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    return robot


@method("bizproc.robot.update")
def robot_update(call: Call) -> Any:
    data = _app_admin(call)
    robot = _existing(call, data)
    fields = data.get("FIELDS")
    if not isinstance(fields, dict) or not fields:
        raise BxError(FAILURE, "No fields to update")
    changes: dict[str, Any] = {}
    if "HANDLER" in fields:
        changes["HANDLER"] = _handler(fields["HANDLER"])
    for key in ("PROPERTIES", "RETURN_PROPERTIES"):
        if key in fields:
            changes[key] = _properties(fields[key])
    if "FILTER" in fields and fields["FILTER"] and not isinstance(fields["FILTER"], dict | list):
        raise BxError(FAILURE, "Wrong activity FILTER!")
    for key in ("AUTH_USER_ID", "USE_SUBSCRIPTION", "DESCRIPTION", "DOCUMENT_TYPE", "FILTER",
                "USE_PLACEMENT", "PLACEMENT_HANDLER"):  # fmt: skip
        if key in fields:
            changes[key] = fields[key]
    if fields.get("NAME"):
        changes["NAME"] = fields["NAME"]
    if not changes:
        raise BxError(FAILURE, "No fields to update")
    if "AUTH_USER_ID" in changes:
        changes["AUTH_USER_ID"] = _user_id(changes["AUTH_USER_ID"])
    robot.update(changes)
    return True


@method("bizproc.robot.list")
def robot_list(call: Call) -> Any:
    _app_admin(call)
    return list(robots(call.portal))


@method("bizproc.robot.delete")
def robot_delete(call: Call) -> Any:
    data = _app_admin(call)
    robot = _existing(call, data)
    del robots(call.portal)[robot["CODE"]]
    return True


def waits(robot: dict[str, Any]) -> bool:
    """Whether a run waits for bizproc.event.send: unless USE_SUBSCRIPTION is "N" (an empty
    value means waiting, DOC bizproc-robot-add.md)."""
    return str(robot.get("USE_SUBSCRIPTION") or "") != "N"


def _signature(portal: dict[str, Any], text: str) -> str:
    key = portal["application_token"].encode()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def robot_request(
    call: Call, robot: dict[str, Any], kind: str, entity_id: str, properties: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the handler's form body without `auth`, the run record) for one robot run.

    Fields as SRC CBPRestActivity::Execute sends them: workflow_id, code, document_id,
    document_type, event_token (`<workflow>|<activity>|<event>.<signature>`, the shape of the
    DOC bizproc.activity.log example), properties, use_subscription, timeout_duration, ts.
    """
    workflow_id = f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
    activity = "A" + "_".join(f"{secrets.randbelow(10**5):05d}" for _ in range(4))
    event_id = secrets.token_urlsafe(24)[:32]
    plain = f"{workflow_id}|{activity}|{event_id}"
    token = f"{plain}.{_signature(call.portal, plain)}"
    document = DOCUMENTS[kind]
    body = {
        "workflow_id": workflow_id,
        "code": robot["CODE"],
        "document_id": ["crm", document, f"{kind}_{entity_id}"],
        "document_type": ["crm", document, kind],
        "event_token": token,
        "properties": properties,
        "use_subscription": "Y" if waits(robot) else "N",
        "timeout_duration": "0",
        "ts": str(int(time.time())),
    }
    run = {
        "id": call.next_id("robot_run"),
        "code": robot["CODE"],
        "handler": robot["HANDLER"],
        "document_id": body["document_id"],
        "event_token": token,
        "properties": properties,
        "state": "sent",
        "status": None,
        "error": "",
        "return_values": {},
        "log_message": "",
        "events_sent": 0,
        "at": time.time(),
    }
    robot_runs(call.portal).append(run)
    del robot_runs(call.portal)[:-200]
    return body, run


@method("bizproc.event.send")
def event_send(call: Call) -> Any:
    token = str(call.get("EVENT_TOKEN") or "")
    plain, _, signature = token.rpartition(".")
    run = next((r for r in robot_runs(call.portal) if r["event_token"] == token), None)
    valid = bool(plain) and hmac.compare_digest(signature, _signature(call.portal, plain))
    if run is None or not valid:
        raise BxError("ACCESS_DENIED", "Access denied!", 403)
    run["events_sent"] += 1
    robot = robots(call.portal).get(run["code"]) or {}
    if run["state"] == "completed" or not waits(robot):
        # The activity is closed: the workflow ignores the event and the call still succeeds
        # (SRC OnExternalEvent returns early). UNCONFIRMED for the newest cloud versions.
        return True
    returned = call.get("RETURN_VALUES")
    allowed = {name.upper(): name for name in robot.get("RETURN_PROPERTIES") or {}}
    if isinstance(returned, dict):
        run["return_values"] = {
            allowed[k.upper()]: v for k, v in returned.items() if k.upper() in allowed
        }
    run["log_message"] = str(call.get("LOG_MESSAGE") or "")
    run["state"] = "completed"
    return True
