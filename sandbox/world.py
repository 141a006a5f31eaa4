"""What the three simulators share: settings, the store, portal/token bookkeeping, event delivery."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sandbox import formcodec
from sandbox.store import Store

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "local.sandbox.app"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
SCOPE = "crm,telephony,call,user,placement,im,disk,app"
DEFAULT_USERS = [
    {"ID": "1", "NAME": "Anna", "LAST_NAME": "Admin", "UF_PHONE_INNER": "101", "ADMIN": True},
    {"ID": "2", "NAME": "Oleg", "LAST_NAME": "Operator", "UF_PHONE_INNER": "102", "ADMIN": False},
]


@dataclass
class Settings:
    app_url: str = "http://127.0.0.1:8000"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_lifetime: int = 3600
    # OLD-DOC: after a refresh the jointly issued access token dies too (docs/bitrix24.md §1.5).
    revoke_access_on_refresh: bool = True
    burst: int = 50
    drain: float = 2.0
    operating_limit: float = 480.0
    operating_cost: float = 0.05
    install_path: str = "/bitrix/install/"
    app_path: str = "/bitrix/app/"
    events_path: str = "/bitrix/events/"
    event_timeout: float = 5.0


class World:
    """Settings + store + the URLs the servers ended up on."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.bitrix_url = ""
        self.oauth_url = ""
        self.unitalk_url = ""
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sandbox-out")

    # ---- portals -------------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return self.bitrix_url.split("://", 1)[1]

    def portal_create(self, payload: dict[str, Any]) -> dict[str, Any]:
        member_id = str(payload.get("member_id") or secrets.token_hex(16))
        client_id = str(payload.get("client_id") or self.settings.client_id)
        client_secret = str(payload.get("client_secret") or self.settings.client_secret)
        users = payload.get("users") or DEFAULT_USERS
        users = [self._user(u, i) for i, u in enumerate(users, start=1)]
        token = hashlib.md5(f"{member_id}|{client_id}|{client_secret}".encode()).hexdigest()
        portal = {
            "member_id": member_id,
            "domain": self.domain,
            "client_id": client_id,
            "client_secret": client_secret,
            "application_token": token,
            "burst": int(payload.get("burst") or self.settings.burst),
            "drain": float(payload.get("drain") or self.settings.drain),
            "operating_limit": float(
                payload.get("operating_limit") or self.settings.operating_limit
            ),
            "operating_cost": float(payload.get("operating_cost") or self.settings.operating_cost),
            "status": "installing",
            "installed": False,
            "users": users,
            "handlers": [],
            "placements": [],
            "lines": [],
            "calls": {},
            "finished": {},
            "records": [],
            "leads": {},
            "contacts": {},
            "activities": {},
            "comments": [],
            "notifications": [],
            "disk": {"storage": None, "objects": {}},
            "call_cards": [],
        }
        with self.store.lock:
            self.store.data["portals"][member_id] = portal
            self.store.touch()
        tokens = self.tokens_issue(member_id, user_id=str(users[0]["ID"]))
        return self.portal_credentials(portal) | {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_in": tokens["expires_in"],
        }

    def _user(self, user: dict[str, Any], index: int) -> dict[str, Any]:
        uid = str(user.get("ID") or user.get("id") or index)
        return {
            "ID": uid,
            "ACTIVE": True,
            "NAME": str(user.get("NAME") or user.get("name") or f"User{uid}"),
            "LAST_NAME": str(user.get("LAST_NAME") or user.get("last_name") or ""),
            "EMAIL": str(user.get("EMAIL") or f"user{uid}@sandbox.local"),
            "UF_PHONE_INNER": str(user.get("UF_PHONE_INNER") or user.get("inner") or ""),
            "WORK_PHONE": "",
            "PERSONAL_MOBILE": "",
            "USER_TYPE": "employee",
            "IS_ONLINE": "N" if user.get("IS_ONLINE") in ("N", False) else "Y",
            "UF_DEPARTMENT": [int(d) for d in user.get("UF_DEPARTMENT") or [1]],
            "ADMIN": bool(user.get("ADMIN", user.get("admin", index == 1))),
        }

    def portal_credentials(self, portal: dict[str, Any]) -> dict[str, Any]:
        return {
            "member_id": portal["member_id"],
            "domain": portal["domain"],
            "client_endpoint": self.rest_base(portal["member_id"]),
            "server_endpoint": f"{self.oauth_url}/rest/",
            "oauth_url": f"{self.oauth_url}/oauth/token/",
            "application_token": portal["application_token"],
            "client_id": portal["client_id"],
            "client_secret": portal["client_secret"],
            "burst": portal["burst"],
            "drain": portal["drain"],
        }

    def portal(self, member_id: str) -> dict[str, Any] | None:
        return self.store.data["portals"].get(member_id)

    def rest_base(self, member_id: str) -> str:
        """The portal's own REST base (its `client_endpoint`): one per portal, as on Bitrix24,
        where every portal has its own host. It refuses other portals' tokens (portal.py)."""
        return f"{self.bitrix_url}/portal/{member_id}/rest/"

    # ---- tokens --------------------------------------------------------------------------
    def tokens_issue(self, member_id: str, *, user_id: str, refresh: bool = True) -> dict[str, Any]:
        access = secrets.token_hex(16)
        expires = int(time.time()) + self.settings.token_lifetime
        result: dict[str, Any] = {
            "access_token": access,
            "expires": expires,
            "expires_in": self.settings.token_lifetime,
        }
        with self.store.lock:
            self.store.data["access_tokens"][access] = {
                "member_id": member_id,
                "user_id": str(user_id),
                "expires": expires,
                "revoked": False,
            }
            if refresh:
                token = secrets.token_hex(16)
                self.store.data["refresh_tokens"][token] = {
                    "member_id": member_id,
                    "user_id": str(user_id),
                    "used": False,
                    "access_token": access,
                    "issued": int(time.time()),
                }
                result["refresh_token"] = token
            self.store.touch()
        return result

    def token_check(self, token: str) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """('', portal, token) when valid, else (error code, None, None)."""
        if not token:
            return "NO_AUTH_FOUND", None, None
        info = self.store.data["access_tokens"].get(token)
        if not info or info["revoked"]:
            return "invalid_token", None, None
        portal = self.portal(info["member_id"])
        if not portal or portal["status"] == "uninstalled":
            return "invalid_token", None, None
        if info["expires"] <= time.time():
            return "expired_token", None, None
        return "", portal, info

    def webhook_issue(self, member_id: str, *, user_id: str) -> str:
        """A new inbound webhook code for a user of the portal (what "Add webhook" makes)."""
        code = secrets.token_hex(8)
        with self.store.lock:
            self.store.data.setdefault("webhooks", {})[code] = {
                "member_id": member_id,
                "user_id": str(user_id),
            }
            self.store.touch()
        return code

    def webhook_check(
        self, user_id: str, code: str
    ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """('', portal, {"user_id", "member_id"}) for a known code of that user, else an error.

        A wrong code, or a code used with another user's id, is NO_AUTH_FOUND (docs/bitrix24.md §3).
        """
        hooks = self.store.data.get("webhooks", {})
        info = next(
            (
                hook
                for known, hook in hooks.items()
                if hmac.compare_digest(known.encode(), code.encode())
            ),
            None,
        )
        if info is None or info["user_id"] != str(user_id):
            return "NO_AUTH_FOUND", None, None
        portal = self.portal(info["member_id"])
        if not portal:
            return "NO_AUTH_FOUND", None, None
        return "", portal, info

    def token_expire(self, member_id: str) -> int:
        count = 0
        with self.store.lock:
            for info in self.store.data["access_tokens"].values():
                if info["member_id"] == member_id and info["expires"] > time.time():
                    info["expires"] = int(time.time()) - 1
                    count += 1
            self.store.touch()
        return count

    # ---- outbound HTTP -------------------------------------------------------------------
    def event_auth(self, portal: dict[str, Any], *, user_id: str, tokens: bool, refresh: bool):
        auth: dict[str, Any] = {
            "domain": portal["domain"],
            "client_endpoint": self.rest_base(portal["member_id"]),
            "server_endpoint": f"{self.oauth_url}/rest/",
            "member_id": portal["member_id"],
            "application_token": portal["application_token"],
        }
        if tokens:
            issued = self.tokens_issue(portal["member_id"], user_id=user_id, refresh=refresh)
            auth = {
                "access_token": issued["access_token"],
                "expires": str(issued["expires"]),
                "expires_in": str(issued["expires_in"]),
                "scope": SCOPE,
                **auth,
                "status": "L",
                "user_id": str(user_id),
            }
            if refresh:
                auth["refresh_token"] = issued["refresh_token"]
        return auth

    def event_send(
        self,
        portal: dict[str, Any],
        event: str,
        data: dict[str, Any],
        *,
        user_id: str = "1",
        url: str | None = None,
        wait: bool = False,
    ) -> list[dict[str, Any]]:
        """Post `event` form-encoded to its bound handlers (or `url`), once, no retries.

        Ordinary events reach only an installed app (installFinish called); ONAPPINSTALL goes
        to `url` regardless. Returns the delivery records (filled in later unless `wait`).
        """
        event = event.upper()
        if url:
            targets = [{"handler": url, "id": 0}]
        elif not portal["installed"]:
            targets = []
        else:
            targets = [h for h in portal["handlers"] if h["event"] == event]
        deliveries = []
        for target in targets:
            body = {
                "event": event,
                "event_handler_id": str(target["id"]),
                "data": data,
                "ts": str(int(time.time())),
                "auth": self.event_auth(
                    portal,
                    user_id=user_id,
                    tokens=event != "ONAPPUNINSTALL",
                    refresh=event == "ONAPPINSTALL",
                ),
            }
            record = {
                "event": event,
                "member_id": portal["member_id"],
                "url": target["handler"],
                "body": formcodec.encode(body),
                "status": None,
                "error": "",
                "at": time.time(),
            }
            with self.store.lock:
                self.store.data["events"].append(record)
                del self.store.data["events"][:-500]
                self.store.touch()
            deliveries.append(record)
            future = self.pool.submit(self._post_event, record)
            if wait:
                future.result()
        return deliveries

    def _post_event(self, record: dict[str, Any]) -> None:
        status, text = self.http_post(
            record["url"], record["body"].encode(), "application/x-www-form-urlencoded"
        )
        with self.store.lock:
            record["status"] = status
            record["error"] = text if status is None else ""
            self.store.touch()

    def http_post(
        self, url: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int | None, str]:
        """POST once; (status, body text) or (None, error text). Never raises."""
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("Content-Type", content_type)
        request.add_header("User-Agent", "Bitrix24 Sandbox")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self.settings.event_timeout) as resp:
                return resp.status, resp.read(20000).decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(20000).decode("utf-8", errors="replace")
        except (OSError, ValueError) as exc:
            return None, str(exc)
