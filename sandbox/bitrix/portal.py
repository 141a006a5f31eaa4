"""The Bitrix24 portal simulator: REST at `/portal/<member_id>/rest/<method>` (each portal's
own base; the shared `/rest/<method>` of old still answers whoever the token names), the portal's
own behaviour (install, events, click-to-call), a small portal web UI (pages.py), `/bx24.js`,
and the control API under `/_sandbox/` (actions.py).
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

from sandbox.bitrix import actions, pages
from sandbox.bitrix.methods import disk, telephony
from sandbox.bitrix.rest import BatchFault, BxError, Call, Engine
from sandbox.httpcore import App, Request, Response, html_response, json_response
from sandbox.world import World

BX24_JS = Path(__file__).parent.parent / "assets" / "bx24.js"
#: A portal's own REST base, `/portal/<member_id>/rest/...` (World.rest_base).
PORTAL_REST = re.compile(r"/portal/([^/]+)(/rest/.*)")
AVATAR_PATH = re.compile(r"/avatar/([0-9]{1,9})\.svg")
_AVATAR_COLOURS = ("#2fc6f6", "#7b3fe4", "#f7a700", "#4c9a00", "#ff5752", "#2067b0")


def avatar_svg(user_id: str) -> bytes:
    """A round avatar with the user's number (what PERSONAL_PHOTO points at in the sandbox)."""
    colour = _AVATAR_COLOURS[int(user_id) % len(_AVATAR_COLOURS)]
    return (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 40 40'>"
        f"<circle cx='20' cy='20' r='20' fill='{colour}'/>"
        "<text x='20' y='26' font-family='sans-serif' font-size='16' fill='#fff' "
        f"text-anchor='middle'>{user_id}</text></svg>"
    ).encode()


def bx_error(error: str, description: str, status: int) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class PortalApp(App):
    name = "bitrix"

    def __init__(self, world: World) -> None:
        super().__init__(world.store)
        self.world = world
        self.engine = Engine(world, self.faults)

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
        avatar = AVATAR_PATH.fullmatch(path)
        if avatar:
            return Response(200, avatar_svg(avatar.group(1)), "image/svg+xml")
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
        try:
            if webhook:
                status, body = self.engine.run_webhook(name, params, *webhook, scope=scope)
            else:
                status, body = self.engine.run(name, params, token)
        except BatchFault as escalated:
            # A command's timeout/reset inside `batch` takes the whole answer (docs/sandbox.md).
            return self.fault_kind(escalated.kind, escalated.seconds) or bx_error(
                "INTERNAL_SERVER_ERROR", "Internal server error", 500
            )
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
        return actions.control(self, request)

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
                "LANG": portal.get("lang") or "en",
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
