"""The Bitrix24 OAuth server (oauth.bitrix.info look-alike): `/oauth/token/` and `/rest/app.info`.

Refresh tokens are single-use (docs/bitrix24.md §1.5, §8): a used one answers 400 `invalid_grant`,
and by default the access token issued with it dies as well (`invalid_token`).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sandbox.bitrix.rest import time_block
from sandbox.control import control_common
from sandbox.httpcore import App, Request, Response, json_response
from sandbox.world import SCOPE, World


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class OAuthApp(App):
    name = "oauth"

    def __init__(self, world: World) -> None:
        super().__init__(world.store)
        self.world = world

    def fault_response(self, kind: str) -> Response:
        if kind == "expired_token":
            return oauth_error("expired_token", "The access token provided has expired", 401)
        if kind == "503":
            return oauth_error("temporarily_unavailable", "Service unavailable", 503)
        return oauth_error("internal_error", "Internal server error", 500)

    def route(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path.startswith("/_sandbox"):
            return control_common(self, request)
        fault = self.apply_fault(path.rsplit("/", 1)[-1] or "token")
        if fault:
            return fault
        params = dict(request.query)
        if request.method == "POST":
            params.update(_body_params(request))
        if path == "/oauth/token":
            return self.token(params)
        if path in ("/rest/app.info", "/rest/app.info.json"):
            return self.app_info(request, params)
        return oauth_error("invalid_request", "Unknown endpoint", 404)

    def token(self, params: dict[str, Any]) -> Response:
        grant = str(params.get("grant_type", ""))
        if grant not in ("refresh_token", "authorization_code"):
            return oauth_error(
                "invalid_request", "grant_type must be refresh_token or authorization_code"
            )
        client_id = str(params.get("client_id", ""))
        secret = str(params.get("client_secret", ""))
        if not client_id or not secret:
            return oauth_error("invalid_request", "client_id and client_secret are required")
        store = self.world.store
        with store.lock:
            if grant == "refresh_token":
                token = str(params.get("refresh_token", ""))
                info = store.data["refresh_tokens"].get(token)
                if not token or not info or info["used"]:
                    return oauth_error("invalid_grant", "Invalid refresh token")
            else:
                code = str(params.get("code", ""))
                info = store.data["codes"].get(code)
                if not code or not info or info["used"] or info["expires"] < time.time():
                    return oauth_error("invalid_grant", "Invalid authorization code")
            portal = self.world.portal(info["member_id"])
            if not portal or portal["client_id"] != client_id or portal["client_secret"] != secret:
                return oauth_error("invalid_client", "Invalid client credentials")
            if portal["status"] == "uninstalled":
                return oauth_error("NOT_INSTALLED", "Application not installed", 401)
            info["used"] = True
            if grant == "refresh_token" and self.world.settings.revoke_access_on_refresh:
                old = store.data["access_tokens"].get(info.get("access_token", ""))
                if old:
                    old["revoked"] = True
            issued = self.world.tokens_issue(portal["member_id"], user_id=info["user_id"])
        body: dict[str, Any] = {
            "access_token": issued["access_token"],
            "client_endpoint": self.world.rest_base(portal["member_id"]),
            "domain": self.world.oauth_url.split("://", 1)[1],
            "expires_in": issued["expires_in"],
            "member_id": portal["member_id"],
            "refresh_token": issued["refresh_token"],
            "scope": SCOPE,
            "server_endpoint": f"{self.world.oauth_url}/rest/",
            "status": "L",
        }
        if grant == "refresh_token":
            body["expires"] = issued["expires"]
            body["user_id"] = int(info["user_id"])
        return json_response(body)

    def app_info(self, request: Request, params: dict[str, Any]) -> Response:
        """The OAuth server's token check: who the token is for, not the portal's `app.info`.

        Shape as b24pysdk's `get_app_info` reads it (client_id, scope, ISO `expires`, user_id,
        install with member_type) and a full `time` block (docs/bitrix24.md §1.4, §1.5; issue 19).
        """
        started = time.time()
        token = str(params.get("auth") or params.get("access_token") or _bearer(request))
        with self.world.store.lock:
            error, portal, info = self.world.token_check(token)
        if error or portal is None or info is None:
            return oauth_error(error, _AUTH_TEXT.get(error, ""), 401)
        expires = datetime.fromtimestamp(info["expires"]).astimezone()
        result = {
            "client_id": portal["client_id"],
            "scope": SCOPE,
            "expires": expires.isoformat(timespec="seconds"),
            "install": {
                "installed": portal["installed"],
                "version": 1,
                "status": "L",
                "scope": SCOPE,
                "domain": portal["domain"],
                "uri": f"{self.world.bitrix_url}/",
                "client_endpoint": self.world.rest_base(portal["member_id"]),
                "member_id": portal["member_id"],
                # UNCONFIRMED value: b24pysdk's own fixtures use "company" / "user".
                "member_type": "company",
            },
            "user_id": int(info["user_id"]),
        }
        return json_response({"result": result, "time": time_block(started, None, None)})


_AUTH_TEXT = {
    "NO_AUTH_FOUND": "Wrong authorization data",
    "invalid_token": "The access token provided is invalid",
    "expired_token": "The access token provided has expired",
}


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _body_params(request: Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.form()
