"""Fixtures shared by the Bitrix24-side tests (imported by both conftest files)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bitrixapp.models import Portal
from tests.support.factories import PortalFactory
from tests.support.fixtures import rsps, sent

__all__ = ["_bitrix_settings", "portal", "rsps", "sent"]

PAYLOADS = Path(__file__).resolve().parents[2] / "payloads" / "bitrix"
OAUTH = "https://oauth.example.test"
CLIENT_ID = "app.test.123"
CLIENT_SECRET = "s3cret-client"
PORTAL_HOST = "acme.bitrix24.com"
REST = f"https://{PORTAL_HOST}/rest/"
APP_INFO = f"{OAUTH}/rest/app.info"


def payload_body(name: str, **replace: str) -> str:
    """A form-encoded event body from tests/payloads/bitrix, with placeholders filled in."""
    text = (PAYLOADS / f"{name}.txt").read_text().strip()
    for key, value in replace.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.fixture(autouse=True)
def _bitrix_settings(settings, tmp_path):
    settings.BITRIX24_OAUTH_SERVER = OAUTH
    settings.BITRIX24_CLIENT_ID = CLIENT_ID
    settings.BITRIX24_CLIENT_SECRET = CLIENT_SECRET
    settings.BITRIX24_PORTAL_HOSTS = ["*.bitrix24.com", "*.bitrix24.ua"]
    settings.APP_BASE_URL = "https://app.example.com"
    settings.BITRIX24_JS_URL = "https://cdn.example.test/bx24.js"
    settings.RATELIMIT_DIR = tmp_path / "ratelimit"


def new_member_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def portal(db) -> Portal:
    return PortalFactory(with_tokens=True, domain=PORTAL_HOST)


def rest_body(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def query(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.url.split("?", 1)[1]).items()}


def ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"result": result, "time": {"start": 1.0, "finish": 1.1, "duration": 0.1}, **extra}


def user_token(portal: Portal | str) -> str:
    """A user's AUTH_ID that the fake OAuth server (`fake_user`) knows to be `portal`'s."""
    member_id = portal if isinstance(portal, str) else portal.member_id
    return f"tok.{member_id}.{uuid.uuid4().hex[:8]}"


def _oauth_app_info(request: Any) -> tuple[int, dict[str, str], str]:
    token = parse_qs(urlsplit(request.url).query).get("auth", [""])[0]
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "tok":
        return 401, {}, json.dumps({"error": "invalid_token", "error_description": ""})
    body = {"result": {"client_id": CLIENT_ID, "install": {"member_id": parts[1]}}}
    return 200, {}, json.dumps(body)


def fake_user(rsps: Any, *, user_id: str = "1", admin: bool = True, endpoint: str = REST) -> None:
    """The portal at `endpoint` answering the user-token check (app.info, profile, user.admin)
    and the OAuth server confirming whose portal a `user_token` is."""
    rsps.post(
        endpoint + "batch",
        json=ok(
            {
                "result": {
                    "app": {"CODE": CLIENT_ID},
                    "me": {"ID": user_id, "ADMIN": admin},
                    "admin": admin,
                },
                "result_error": [],
            }
        ),
    )
    if not any(getattr(m, "callback", None) is _oauth_app_info for m in rsps.registered()):
        rsps.add_callback("GET", re.compile(re.escape(APP_INFO) + r"(\?.*)?$"), _oauth_app_info)
