"""The Bitrix24 portal simulator: REST at `/portal/<member_id>/rest/<method>` (each portal's
own base; the shared `/rest/<method>` of old still answers whoever the token names), the portal's
own behaviour (install, events, click-to-call), a small portal web UI, `/bx24.js`, and the
control API under `/_sandbox/`.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import json
import re
import resource
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sandbox import formcodec
from sandbox.bitrix import pages
from sandbox.bitrix.methods import crm, disk, telephony
from sandbox.bitrix.rest import BxError, Call, Engine
from sandbox.control import control_common, control_payload
from sandbox.httpcore import App, Request, Response, html_response, json_response
from sandbox.world import World

BX24_JS = Path(__file__).parent.parent / "assets" / "bx24.js"
#: A portal's own REST base, `/portal/<member_id>/rest/...` (World.rest_base).
PORTAL_REST = re.compile(r"/portal/([^/]+)(/rest/.*)")


def bx_error(error: str, description: str, status: int) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class PortalApp(App):
    name = "bitrix"

    def __init__(self, world: World) -> None:
        super().__init__(world.store)
        self.world = world
        self.engine = Engine(world)

    def on_reset(self) -> None:
        super().on_reset()
        self.engine.limits.reset()

    def fault_response(self, kind: str) -> Response:
        if kind == "expired_token":
            return bx_error("expired_token", "The access token provided has expired", 401)
        if kind == "503":
            return bx_error("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
        return bx_error("INTERNAL_SERVER_ERROR", "Internal server error", 500)

    def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sandbox/"):
            return self.control(request)
        scope: str | None = None
        scoped = PORTAL_REST.fullmatch(path)
        if scoped:
            scope, path = scoped.group(1), scoped.group(2)
            request = dataclasses.replace(request, path=path)
        if path == "/rest/upload.json":
            return self.upload(request, scope)
        if path.startswith("/rest/"):
            return self.rest(request, scope)
        if path == "/bx24.js":
            return Response(200, BX24_JS.read_bytes(), "application/javascript; charset=utf-8")
        if path.rstrip("/") == "/oauth/authorize":
            return self.authorize(request)
        return pages.render(self, request)

    # ---- REST ------------------------------------------------------------------------------
    def foreign_token(self, token: str, scope: str | None) -> Response | None:
        """The answer when `token` is valid but not for the portal whose base was called.

        A portal checks a token against its own installation: another portal's token is as
        unknown to it as a made-up one (401 invalid_token, docs/sandbox.md).
        """
        if scope is None:
            return None
        with self.store.lock:
            error, portal, _info = self.world.token_check(token)
        if not error and portal is not None and portal["member_id"] != scope:
            return bx_error("invalid_token", "The access token provided is invalid", 401)
        return None

    def rest(self, request: Request, scope: str | None = None) -> Response:
        parts = request.path[len("/rest/") :].strip("/").split("/")
        webhook: tuple[str, str] | None = None
        if len(parts) == 3 and parts[0].isdigit():
            # Inbound webhook: /rest/<user_id>/<code>/<method> (docs/bitrix24.md §2.1).
            webhook, parts = (parts[0], parts[1]), parts[2:]
        name = "/".join(parts).lower().removesuffix(".json")
        if not name or "/" in name:
            return bx_error("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        fault = self.apply_fault(name)
        if fault:
            return fault
        params = dict(request.query)
        if request.body:
            if request.content_type == "application/json":
                try:
                    body = request.json()
                except ValueError:
                    # SRC: invalid JSON is silently treated as empty params (docs/bitrix24.md §2.1).
                    body = {}
                if isinstance(body, dict):
                    params.update(body)
            elif request.content_type.startswith("multipart/"):
                params.update(_multipart(request)[0])
            else:
                params.update(request.form())
        token = str(params.pop("auth", "") or params.pop("access_token", "") or "")
        header = request.headers.get("authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not webhook:
            refused = self.foreign_token(token, scope)
            if refused:
                return refused
        cpu = _cpu_times()
        if webhook:
            status, body = self.engine.run_webhook(name, params, *webhook, scope=scope)
        else:
            status, body = self.engine.run(name, params, token)
        user_s, system_s = (after - before for after, before in zip(_cpu_times(), cpu, strict=True))
        timing = body.get("time")
        headers = {
            "X-Bitrix-Rest-Time": str(timing.get("duration", 0) if isinstance(timing, dict) else 0),
            # CPU seconds of this request (SRC CRestServer; docs/bitrix24.md §2.1).
            "X-Bitrix-Rest-User-Time": f"{user_s:.6f}",
            "X-Bitrix-Rest-System-Time": f"{system_s:.6f}",
        }
        if not webhook:
            headers["X-Bitrix-Rest-Application"] = self.world.settings.client_id
        return json_response(body, status, **headers)

    def upload(self, request: Request, scope: str | None = None) -> Response:
        """Second step of the upload-URL mode (attachRecord, disk.folder.uploadFile)."""
        token = str(request.query.get("token", ""))
        auth = str(request.query.get("auth", ""))
        refused = self.foreign_token(auth, scope)
        if refused:
            return refused
        with self.store.lock:
            error, portal, info = self.world.token_check(auth)
            if error or portal is None or info is None:
                return bx_error(error, "The access token provided is invalid", 401)
            upload = self.store.data["uploads"].get(token)
            if not upload or upload["member_id"] != portal["member_id"]:
                return bx_error("ERROR_NOT_FOUND", "Upload token not found", 400)
        _fields, files = _multipart(request)
        data = files.get("file")
        if data is None:
            return bx_error("", "File content is empty.", 400)
        with self.store.lock:
            user = next(u for u in portal["users"] if u["ID"] == info["user_id"])
            call = Call(self.world, portal, user, auth, {})
            try:
                if upload["kind"] == "telephony":
                    result: Any = {
                        "FILE_ID": telephony.save_record(
                            call, upload["call_id"], upload["filename"], data
                        )
                    }
                else:
                    result = disk.disk_store_file(
                        call, upload["folder_id"], upload["name"], data, upload["unique"]
                    )
            except BxError as exc:
                return json_response(exc.body(), exc.status)
            self.store.data["uploads"].pop(token, None)
            self.store.touch()
        return json_response({"result": result})

    def authorize(self, request: Request) -> Response:
        """`/oauth/authorize/`: redirect to the app with a 30-second code.

        docs/bitrix24.md §1.5, step 2.
        """
        client_id = str(request.query.get("client_id", ""))
        member_id = str(request.query.get("member_id", ""))
        with self.store.lock:
            portals = list(self.store.data["portals"].values())
            portal = self.world.portal(member_id) or next(
                (p for p in portals if p["client_id"] == client_id), None
            )
        if portal is None:
            return html_response("<h1>Application not found</h1>", 404)
        code = self.code_issue(portal["member_id"])
        redirect = str(request.query.get("redirect_uri") or f"{self.world.settings.app_url}/")
        query = urlencode(
            {
                "code": code,
                "state": request.query.get("state", ""),
                "domain": portal["domain"],
                "member_id": portal["member_id"],
                "scope": "crm,telephony,user,placement,im,disk",
                "server_domain": self.world.oauth_url.split("://", 1)[1],
            }
        )
        sep = "&" if "?" in redirect else "?"
        return Response(302, b"", headers={"Location": f"{redirect}{sep}{query}"})

    def code_issue(self, member_id: str) -> str:
        code = secrets.token_hex(16)
        with self.store.lock:
            self.store.data["codes"][code] = {
                "member_id": member_id,
                "user_id": "1",
                "used": False,
                "expires": time.time() + 30,
            }
            self.store.touch()
        return code

    # ---- control ---------------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        match = re.fullmatch(r"/_sandbox/files/(\d+)", path)
        if match:
            data = self.store.read_file(int(match.group(1)))
            if data is None:
                return bx_error("ERROR_NOT_FOUND", "File not found", 404)
            return Response(200, data, "application/octet-stream")
        if path in ("/_sandbox/state", "/_sandbox/faults", "/_sandbox/reset"):
            return control_common(self, request)
        payload = control_payload(request)
        if isinstance(payload, Response):
            return payload
        if path == "/_sandbox/portals":
            try:
                return json_response(self.world.portal_create(payload), 201)
            except (TypeError, ValueError) as exc:
                return json_response({"error": f"bad portal settings: {exc}"}, 400)
        match = re.fullmatch(r"/_sandbox/portals/([^/]+)/([a-z-]+)", path)
        if not match:
            return json_response({"error": f"unknown control endpoint {path}"}, 404)
        member_id, action = match.groups()
        portal = self.world.portal(member_id)
        if portal is None:
            return json_response({"error": f"no portal {member_id}"}, 404)
        handler = getattr(self, "action_" + action.replace("-", "_"), None)
        if handler is None:
            return json_response({"error": f"unknown portal action {action}"}, 404)
        return handler(portal, payload)

    def action_expire(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        return json_response({"expired": self.world.token_expire(portal["member_id"])})

    def action_tokens(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """A fresh token pair for a user of the portal (as if they opened the app)."""
        user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
        return json_response(self.world.tokens_issue(portal["member_id"], user_id=user_id))

    def action_webhook(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """An inbound webhook for a user: `{"user_id": 1}` → its URL `/rest/<user>/<code>/`."""
        user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
        if not any(u["ID"] == user_id for u in portal["users"]):
            return json_response({"error": f"no user {user_id} on this portal"}, 400)
        code = self.world.webhook_issue(portal["member_id"], user_id=user_id)
        url = f"{self.world.bitrix_url}/rest/{user_id}/{code}/"
        return json_response({"url": url, "user_id": user_id, "code": code}, 201)

    def action_code(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        return json_response({"code": self.code_issue(portal["member_id"])})

    def action_install(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """Open the install page as portals do, send ONAPPINSTALL (docs/bitrix24.md §1.2, §1.3)."""
        user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
        settings = self.world.settings
        url, form = self.iframe_request(portal, user_id, settings.install_path, "DEFAULT", None)
        status, text = self.world.http_post(
            url, formcodec.encode(form).encode(), "application/x-www-form-urlencoded"
        )
        event_url = str(payload.get("event_url") or settings.app_url + settings.events_path)
        delivery = self.world.event_send(
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

    def action_install_event(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """ONAPPINSTALL alone (the portal UI opens the install page itself in the browser)."""
        settings = self.world.settings
        event_url = str(payload.get("event_url") or settings.app_url + settings.events_path)
        delivery = self.world.event_send(
            portal,
            "ONAPPINSTALL",
            {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "en"},
            user_id=str(payload.get("user_id") or portal["users"][0]["ID"]),
            url=event_url,
            wait=True,
        )[0]
        return json_response({"status": delivery["status"], "error": delivery["error"]})

    def action_lead(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """Seed a lead (with a phone) as a portal user would create it in the CRM UI."""
        phone = str(payload.get("phone") or "")
        with self.store.lock:
            call = Call(self.world, portal, portal["users"][0], "", {})
            lead = crm.crm_create(
                call,
                "LEAD",
                {
                    "TITLE": str(payload.get("title") or f"Lead {phone}"),
                    "NAME": str(payload.get("name") or ""),
                    "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}] if phone else [],
                },
            )
            self.store.touch()
        return json_response(lead, 201)

    def action_install_finish(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        with self.store.lock:
            portal["installed"] = True
            portal["status"] = "installed"
            self.store.touch()
        return json_response({"installed": True})

    def action_uninstall(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        clean = 1 if payload.get("clean") else 0
        deliveries = self.world.event_send(
            portal, "ONAPPUNINSTALL", {"LANGUAGE_ID": "en", "CLEAN": clean}, wait=True
        )
        with self.store.lock:
            portal.update(
                installed=False, status="uninstalled", handlers=[], placements=[], lines=[]
            )
            for info in self.store.data["access_tokens"].values():
                if info["member_id"] == portal["member_id"]:
                    info["revoked"] = True
            for info in self.store.data["refresh_tokens"].values():
                if info["member_id"] == portal["member_id"]:
                    info["used"] = True
            self.store.touch()
        return json_response({"uninstalled": True, "deliveries": deliveries})

    def action_events(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """Fire any event with the given `data` to the app's bound handlers."""
        event = str(payload.get("event") or "").upper()
        if not event:
            return json_response({"error": "event is required"}, 400)
        data = payload.get("data") or {}
        deliveries = self.world.event_send(
            portal, event, data, user_id=str(payload.get("user_id") or "1"), wait=True
        )
        return json_response({"deliveries": deliveries})

    def action_click_to_call(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        """A user clicks a phone number: register internally, then ONEXTERNALCALLSTART.

        docs/bitrix24.md §5.6.
        """
        user_id = str(payload.get("user_id") or portal["users"][0]["ID"])
        phone = str(payload.get("phone") or "")
        entity_type = str(payload.get("entity_type") or "").upper()
        entity_id = str(payload.get("entity_id") or "")
        line = str(payload.get("line") or (portal["lines"][0]["NUMBER"] if portal["lines"] else ""))
        with self.store.lock:
            user = next((u for u in portal["users"] if u["ID"] == user_id), portal["users"][0])
            call = Call(self.world, portal, user, "", {})
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
            try:
                registered = telephony.register_call(call, params)
            except BxError as exc:
                return json_response(exc.body(), exc.status)
            self.store.touch()
        data = {
            "PHONE_NUMBER": phone,
            "PHONE_NUMBER_INTERNATIONAL": phone,
            "EXTENSION": "",
            "USER_ID": user_id,
            "CALL_LIST_ID": "0",
            "LINE_NUMBER": line,
            "IS_MOBILE": "0",
            "CALL_ID": registered["CALL_ID"],
            "CRM_ENTITY_TYPE": registered["CRM_ENTITY_TYPE"],
            "CRM_ENTITY_ID": str(registered["CRM_ENTITY_ID"] or "0"),
            "CRM_CREATED_LEAD": str(registered["CRM_CREATED_LEAD"] or ""),
        }
        deliveries = self.world.event_send(
            portal, "ONEXTERNALCALLSTART", data, user_id=user_id, wait=bool(payload.get("wait"))
        )
        return json_response({"call": registered, "event": data, "deliveries": deliveries})

    def action_users(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        with self.store.lock:
            user = self.world._user(payload, len(portal["users"]) + 1)
            portal["users"] = [u for u in portal["users"] if u["ID"] != user["ID"]] + [user]
            self.store.touch()
        return json_response(user, 201)

    def action_settings(self, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
        allowed = {"burst": int, "drain": float, "operating_limit": float, "operating_cost": float}
        with self.store.lock:
            try:
                for key, cast in allowed.items():
                    if key in payload:
                        portal[key] = cast(payload[key])
            except (TypeError, ValueError):
                return json_response({"error": "burst/drain/operating_* must be numbers"}, 400)
            self.store.touch()
        return json_response({k: portal[k] for k in allowed})

    # ---- iframe ----------------------------------------------------------------------------
    def iframe_request(
        self,
        portal: dict[str, Any],
        user_id: str,
        path: str,
        placement: str,
        options: dict[str, Any] | None,
        handler: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """URL (with DOMAIN/PROTOCOL/LANG/APP_SID) and form body of an app iframe POST.

        docs/bitrix24.md §1.2.
        """
        tokens = self.world.tokens_issue(portal["member_id"], user_id=user_id)
        query = urlencode(
            {
                "DOMAIN": portal["domain"],
                "PROTOCOL": "0",
                "LANG": "en",
                "APP_SID": secrets.token_hex(16),
            }
        )
        base = handler or (self.world.settings.app_url + path)
        url = f"{base}{'&' if '?' in base else '?'}{query}"
        form: dict[str, Any] = {
            "AUTH_ID": tokens["access_token"],
            "AUTH_EXPIRES": str(tokens["expires_in"]),
            "REFRESH_ID": tokens["refresh_token"],
            "SERVER_ENDPOINT": f"{self.world.oauth_url}/rest/",
            "APPLICATION_TOKEN": portal["application_token"],
            "APPLICATION_SCOPE": "crm,telephony,call,user,placement,im,disk",
            "member_id": portal["member_id"],
            "status": "L",
            "PLACEMENT": placement,
            "PLACEMENT_OPTIONS": json.dumps(options) if options is not None else "",
        }
        return url, form


def _cpu_times() -> tuple[float, float]:
    """(user, system) CPU seconds of the calling thread (each request has its own thread)."""
    if hasattr(resource, "RUSAGE_THREAD"):
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_utime, usage.ru_stime
    return time.thread_time(), 0.0


def _multipart(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """Minimal multipart/form-data parser (fields, files) built on the stdlib email parser."""
    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + request.body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if part.get_filename():
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode("utf-8", errors="replace")
    return fields, files
