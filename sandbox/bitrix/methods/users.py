"""The `user` scope: `profile`, `user.current`, `user.admin`, `user.get` (docs/bitrix24.md §7.4)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import matches, public_user
from sandbox.bitrix.rest import Call, method, paged


@method("profile")
def profile(call: Call) -> Any:
    user = call.user
    return {
        "ID": user["ID"],
        "ADMIN": user["ADMIN"],
        "NAME": user["NAME"],
        "LAST_NAME": user["LAST_NAME"],
        "PERSONAL_GENDER": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": 0,
    }


@method("user.current")
def user_current(call: Call) -> Any:
    return public_user(call.user)


@method("user.admin")
def user_admin(call: Call) -> Any:
    return bool(call.user["ADMIN"])


@method("user.get")
def user_get(call: Call) -> Any:
    flt = call.get("FILTER") or call.get("filter") or {}
    if not isinstance(flt, dict):
        flt = {}
    if call.get("ID") is not None:
        flt = {**flt, "ID": call.get("ID")}
    users = [u for u in call.portal["users"] if matches(u, flt)]
    return paged([public_user(u) for u in users], call)
