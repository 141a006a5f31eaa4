"""The portal's control API under `/_sandbox/` (docs/sandbox.md): stored files, create a
portal, and per-portal actions — tokens, webhooks, install/uninstall as a portal does them,
seeded leads and users, click-to-call, bucket settings. Each action is one entry of `ACTIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import formcodec
from sandbox.bitrix import agentactions, crmactions
from sandbox.bitrix.methods import crm, telephony
from sandbox.bitrix.rest import BxError, Call
from sandbox.control import control_common, control_payload
from sandbox.httpcore import Request, Response, json_response

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp


def control(app: PortalApp, request: Request) -> Response:
    path = request.path.rstrip("/")
    match = re.fullmatch(r"/_sandbox/files/(\d+)", path)
    if match:
        data = app.store.read_file(int(match.group(1)))
        if data is None:
            return json_response(
                {"error": "ERROR_NOT_FOUND", "error_description": "File not found"}, 404
            )
        return Response(200, data, "application/octet-stream")
    if path in ("/_sandbox/state", "/_sandbox/faults", "/_sandbox/reset"):
        return control_common(app, request)
    payload = control_payload(request)
    if isinstance(payload, Response):
        return payload
    if path == "/_sandbox/portals":
        try:
            return json_response(app.world.portal_create(payload), 201)
        except (TypeError, ValueError) as exc:
            return json_response({"error": f"bad portal settings: {exc}"}, 400)
    match = re.fullmatch(r"/_sandbox/portals/([^/]+)/([a-z-]+)", path)
    if not match:
        return json_response({"error": f"unknown control endpoint {path}"}, 404)
    member_id, action = match.groups()
    portal = app.world.portal(member_id)
    if portal is None:
        return json_response({"error": f"no portal {member_id}"}, 404)
    handler = ACTIONS.get(action)
    if handler is None:
        return json_response({"error": f"unknown portal action {action}"}, 404)
    return handler(app, portal, payload)


def action_expire(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    return json_response({"expired": app.world.token_expire(portal["member_id"])})


def action_tokens(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """A fresh token pair for a user of the portal (as if they opened the app)."""
    user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
    return json_response(app.world.tokens_issue(portal["member_id"], user_id=user_id))


def action_webhook(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """An inbound webhook for a user: `{"user_id": 1}` → its URL `/rest/<user>/<code>/`."""
    user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
    if not any(u["ID"] == user_id for u in portal["users"]):
        return json_response({"error": f"no user {user_id} on this portal"}, 400)
    code = app.world.webhook_issue(portal["member_id"], user_id=user_id)
    url = f"{app.world.bitrix_url}/rest/{user_id}/{code}/"
    return json_response({"url": url, "user_id": user_id, "code": code}, 201)


def action_code(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    return json_response({"code": app.code_issue(portal["member_id"])})


def action_install(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """Open the install page as portals do, send ONAPPINSTALL (docs/bitrix24.md §1.2, §1.3)."""
    user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
    settings = app.world.settings
    url, form = app.iframe_request(portal, user_id, settings.install_path, "DEFAULT", None)
    status, text = app.world.http_post(
        url, formcodec.encode(form).encode(), "application/x-www-form-urlencoded"
    )
    event_url = str(payload.get("event_url") or settings.app_url + settings.events_path)
    delivery = app.world.event_send(
        portal,
        "ONAPPINSTALL",
        {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
        user_id=user_id,
        url=event_url,
        wait=True,
    )[0]
    return json_response(
        {
            "install_page": {"url": url, "status": status, "body": text[:4000]},
            "onappinstall": {
                "url": event_url,
                "status": delivery["status"],
                "error": delivery["error"],
            },
        }
    )


def action_install_event(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    """ONAPPINSTALL alone (the portal UI opens the install page itself in the browser)."""
    settings = app.world.settings
    event_url = str(payload.get("event_url") or settings.app_url + settings.events_path)
    delivery = app.world.event_send(
        portal,
        "ONAPPINSTALL",
        {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
        user_id=str(payload.get("user_id") or portal["users"][0]["ID"]),
        url=event_url,
        wait=True,
    )[0]
    return json_response({"status": delivery["status"], "error": delivery["error"]})


def action_lead(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """Seed a lead (with a phone) as a portal user would create it in the CRM UI."""
    phone = str(payload.get("phone") or "")
    with app.store.lock:
        call = Call(app.world, portal, portal["users"][0], "", {})
        lead = crm.crm_create(
            call,
            "LEAD",
            {
                "TITLE": str(payload.get("title") or f"Lead {phone}"),
                "NAME": str(payload.get("name") or ""),
                "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}] if phone else [],
            },
        )
        app.store.touch()
    return json_response(lead, 201)


def action_install_finish(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    with app.store.lock:
        portal["installed"] = True
        portal["status"] = "installed"
        app.store.touch()
    return json_response({"installed": True})


def action_uninstall(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    clean = 1 if payload.get("clean") else 0
    deliveries = app.world.event_send(
        portal, "ONAPPUNINSTALL", {"LANGUAGE_ID": "en", "CLEAN": clean}, wait=True
    )
    with app.store.lock:
        portal.update(installed=False, status="uninstalled", handlers=[], placements=[], lines=[])
        portal["robots"] = {}  # an app's robots go with it (SRC bizproc onRestAppDelete)
        for info in app.store.data["access_tokens"].values():
            if info["member_id"] == portal["member_id"]:
                info["revoked"] = True
        for info in app.store.data["refresh_tokens"].values():
            if info["member_id"] == portal["member_id"]:
                info["used"] = True
        app.store.touch()
    return json_response({"uninstalled": True, "deliveries": deliveries})


def action_events(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """Fire any event with the given `data` to the app's bound handlers."""
    event = str(payload.get("event") or "").upper()
    if not event:
        return json_response({"error": "event is required"}, 400)
    data = payload.get("data") or {}
    deliveries = app.world.event_send(
        portal, event, data, user_id=str(payload.get("user_id") or "1"), wait=True
    )
    return json_response({"deliveries": deliveries})


def action_click_to_call(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    """A user clicks a phone number: register internally, then ONEXTERNALCALLSTART.

    docs/bitrix24.md §5.6.
    """
    user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
    phone = str(payload.get("phone") or "")
    entity_type = str(payload.get("entity_type") or "").upper()
    entity_id = str(payload.get("entity_id") or "")
    line = str(payload.get("line") or (portal["lines"][0]["NUMBER"] if portal["lines"] else ""))
    # Set when the user dials from a call list (crmactions calllist-dial, docs/agents.md §2.1).
    call_list_id = str(payload.get("call_list_id") or "0")
    with app.store.lock:
        user = next((u for u in portal["users"] if u["ID"] == user_id), portal["users"][0])
        call = Call(app.world, portal, user, "", {})
        params: dict[str, Any] = {
            "USER_ID": user_id,
            "PHONE_NUMBER": phone,
            "TYPE": 1,
            "CRM_CREATE": 1,
            "SHOW": 1,
            "LINE_NUMBER": line,
        }
        if entity_type and entity_id:
            params.update(CRM_ENTITY_TYPE=entity_type, CRM_ENTITY_ID=entity_id)
        if call_list_id != "0":
            params["CALL_LIST_ID"] = call_list_id
        try:
            registered = telephony.register_call(call, params)
        except BxError as exc:
            return json_response(exc.body(), exc.status)
        app.store.touch()
    data = {
        "PHONE_NUMBER": phone,
        "PHONE_NUMBER_INTERNATIONAL": phone,
        "EXTENSION": "",
        "USER_ID": user_id,
        "CALL_LIST_ID": call_list_id,
        "LINE_NUMBER": line,
        "IS_MOBILE": "0",
        "CALL_ID": registered["CALL_ID"],
        "CRM_ENTITY_TYPE": registered["CRM_ENTITY_TYPE"],
        "CRM_ENTITY_ID": str(registered["CRM_ENTITY_ID"] or "0"),
        "CRM_CREATED_LEAD": str(registered["CRM_CREATED_LEAD"] or ""),
    }
    deliveries = app.world.event_send(
        portal, "ONEXTERNALCALLSTART", data, user_id=user_id, wait=bool(payload.get("wait"))
    )
    return json_response({"call": registered, "event": data, "deliveries": deliveries})


def action_users(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    with app.store.lock:
        user = app.world._user(payload, len(portal["users"]) + 1)
        portal["users"] = [u for u in portal["users"] if u["ID"] != user["ID"]] + [user]
        app.store.touch()
    return json_response(user, 201)


def action_settings(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    allowed = {"burst": int, "drain": float, "operating_limit": float, "operating_cost": float}
    # The language the portal's users read (LANG of every app frame, docs/sandbox.md): Bitrix24
    # codes, `ua` for Ukrainian.
    if "lang" in payload and str(payload["lang"]) not in ("en", "ua", "ru", "de"):
        return json_response({"error": "lang must be one of en, ua, ru, de"}, 400)
    with app.store.lock:
        if "lang" in payload:
            portal["lang"] = str(payload["lang"])
        try:
            for key, cast in allowed.items():
                if key in payload:
                    portal[key] = cast(payload[key])
        except (TypeError, ValueError):
            return json_response({"error": "burst/drain/operating_* must be numbers"}, 400)
        app.store.touch()
    return json_response({k: portal[k] for k in allowed})


#: `POST /_sandbox/portals/<member_id>/<action>` → its handler (docs/sandbox.md).
ACTIONS: dict[str, Callable[[PortalApp, dict[str, Any], dict[str, Any]], Response]] = {
    "expire": action_expire,
    "tokens": action_tokens,
    "webhook": action_webhook,
    "code": action_code,
    "install": action_install,
    "install-event": action_install_event,
    "lead": action_lead,
    "install-finish": action_install_finish,
    "uninstall": action_uninstall,
    "events": action_events,
    "click-to-call": action_click_to_call,
    "users": action_users,
    "settings": action_settings,
    **crmactions.ACTIONS,
    **agentactions.ACTIONS,
}
