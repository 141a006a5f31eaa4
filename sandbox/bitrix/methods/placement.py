"""`placement.bind` / `unbind` / `get`: where the app's pages open (docs/bitrix24.md §6.1)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import check_handler_url, require_admin
from sandbox.bitrix.rest import BxError, Call, method

PLACEMENTS = {
    "CALL_CARD",
    "TELEPHONY_ANALYTICS_MENU",
    "LEFT_MENU",
    "REST_APP_URI",
    "PAGE_BACKGROUND_WORKER",
    *(
        f"CRM_{entity}_{where}"
        for entity in ("LEAD", "DEAL", "CONTACT", "COMPANY", "QUOTE", "SMART_INVOICE", "ORDER")
        for where in (
            "DETAIL_TAB",
            "DETAIL_TOOLBAR",
            "DETAIL_ACTIVITY",
            "ACTIVITY_TIMELINE_MENU",
            "LIST_MENU",
            "LIST_TOOLBAR",
        )
    ),
}


def _placement_args(call: Call) -> tuple[str, str]:
    """PLACEMENT (required, upper-cased) and HANDLER of placement.bind / unbind (admins only)."""
    require_admin(call)
    code = str(call.get("PLACEMENT") or "").upper()
    handler = str(call.get("HANDLER") or "")
    if not code:
        raise BxError(
            "ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty", argument="PLACEMENT"
        )
    return code, handler


@method("placement.bind")
def placement_bind(call: Call) -> Any:
    code, handler = _placement_args(call)
    if code == "DEFAULT":
        raise BxError("ERROR_ARGUMENT", "Wrong value", argument="PLACEMENT")
    if not handler:
        raise BxError("ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty", argument="HANDLER")
    if code not in PLACEMENTS and not code.startswith("CRM_DYNAMIC_"):
        raise BxError("ERROR_PLACEMENT_NOT_FOUND", "Placement not found")
    check_handler_url(handler)
    placements = call.portal["placements"]
    if any(p["placement"] == code and p["handler"] == handler for p in placements):
        raise BxError("ERROR_CORE", "Unable to set placement handler: Handler already binded")
    lang_all = call.get("LANG_ALL") if isinstance(call.get("LANG_ALL"), dict) else {}
    placements.append(
        {
            "placement": code,
            "userId": 0,
            "handler": handler,
            "options": [],
            "title": str(call.get("TITLE") or ""),
            "description": str(call.get("DESCRIPTION") or ""),
            "langAll": lang_all,
        }
    )
    return True


@method("placement.unbind")
def placement_unbind(call: Call) -> Any:
    code, handler = _placement_args(call)
    keep, removed = [], 0
    for p in call.portal["placements"]:
        if p["placement"] == code and (not handler or p["handler"] == handler):
            removed += 1
        else:
            keep.append(p)
    call.portal["placements"] = keep
    # count is +1 per found row and +1 per delete (docs/bitrix24.md §6.1).
    return {"count": removed * 2}


@method("placement.get")
def placement_get(call: Call) -> Any:
    return list(call.portal["placements"])
