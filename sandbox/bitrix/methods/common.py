"""Helpers the Bitrix24 method scopes share: parameter casts, user lookup, the list filter,
admin and handler-URL checks, and the two-step upload URL (docs/bitrix24.md §2-7).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode, urlsplit

from sandbox.bitrix.rest import BxError, Call


def digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def need_dict(call: Call, name: str) -> dict[str, Any]:
    value = call.get(name)
    if not isinstance(value, dict):
        raise BxError("ERROR_ARGUMENT", f"Argument '{name}' is null or empty", argument=name)
    return value


def as_int(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise BxError("INVALID_ARG_VALUE", f"Invalid value for {name}") from exc


def truthy(value: Any, default: bool) -> bool:
    # PHP (bool) cast: "0", "" and "N" are false; the string "false" is TRUE (docs/bitrix24.md §5).
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip() not in ("", "0", "N")


def user_by_id(call: Call, user_id: Any) -> dict[str, Any] | None:
    return next((u for u in call.portal["users"] if u["ID"] == str(user_id)), None)


def public_user(user: dict[str, Any], photo_base: str = "") -> dict[str, Any]:
    # Users stored before IS_ONLINE / UF_DEPARTMENT existed read as online, in department 1.
    # PERSONAL_PHOTO is an absolute URL on the portal, as Bitrix24 gives it (docs/sandbox.md):
    # the sandbox draws an avatar per user at /avatar/<ID>.svg unless the user has "" set.
    photo = f"{photo_base}/avatar/{user.get('ID')}.svg" if photo_base else ""
    return {"IS_ONLINE": "Y", "UF_DEPARTMENT": [1], "PERSONAL_PHOTO": photo, **user}


def matches(entity: dict[str, Any], flt: dict[str, Any]) -> bool:
    for raw_key, expected in flt.items():
        key = raw_key.lstrip("=<>!%")
        op = raw_key[: len(raw_key) - len(key)]
        actual = entity.get(key.upper(), entity.get(key))
        if key.upper() == "PHONE":
            wanted = digits(expected)
            if not any(digits(p.get("VALUE")) == wanted for p in actual or []):
                return False
            continue
        if isinstance(actual, bool):
            actual = "Y" if actual else "N"
            expected = {"true": "Y", "false": "N", "1": "Y", "0": "N"}.get(
                str(expected).lower(), str(expected)
            )
        if op in (">", ">=", "<", "<="):
            try:
                a, b = float(str(actual)), float(str(expected))
            except (TypeError, ValueError):
                return False
            ok = {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
            if not ok:
                return False
        elif op == "!":
            if str(actual) == str(expected):
                return False
        elif isinstance(expected, list):
            if str(actual) not in [str(e) for e in expected]:
                return False
        elif str(actual) != str(expected):
            return False
    return True


def require_admin(call: Call) -> None:
    if not call.user["ADMIN"]:
        raise BxError("ACCESS_DENIED", "Access denied!", 403)


def check_handler_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BxError("ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol")
    if "." not in (parts.hostname or ""):
        # Bitrix24 rejects handler hosts without a dot (e.g. `localhost`), docs/bitrix24.md §6.1.
        raise BxError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL")


def upload_url(call: Call, token: str) -> str:
    return f"{call.world.rest_base(call.portal['member_id'])}upload.json?" + urlencode(
        {"auth": call.token, "token": token}
    )


def decode_base64(content: Any) -> bytes:
    if not isinstance(content, str) or not content.strip():
        raise BxError("", "File content is empty.")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BxError(
            "", "File content is not properly encoded. Base64 encoding is expected."
        ) from exc
    if not data:
        raise BxError("", "File content is empty.")
    return data
