"""`event.bind` / `event.get` / `event.unbind`: the app's event handlers (docs/bitrix24.md §1.3, §6.1)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import check_handler_url, require_admin
from sandbox.bitrix.rest import BxError, Call, method


@method("event.bind")
def event_bind(call: Call) -> Any:
    require_admin(call)
    event = str(call.get("event") or "").upper()
    handler = str(call.get("handler") or "")
    if not event:
        raise BxError("ERROR_ARGUMENT", "Argument 'event' is null or empty", argument="event")
    if not event.startswith("ON"):
        raise BxError("ERROR_EVENT_NOT_FOUND", "Event not found")
    if not handler:
        raise BxError("ERROR_ARGUMENT", "Argument 'handler' is null or empty", argument="handler")
    check_handler_url(handler)
    handlers = call.portal["handlers"]
    if any(h["event"] == event and h["handler"] == handler for h in handlers):
        raise BxError("ERROR_CORE", "Handler already binded")
    handlers.append(
        {
            "id": call.next_id("event_handler"),
            "event": event,
            "handler": handler,
            "auth_type": str(call.get("auth_type") or "0"),
            "offline": 1 if str(call.get("event_type") or "") == "offline" else 0,
        }
    )
    return True


@method("event.get")
def event_get(call: Call) -> Any:
    return [
        {
            "event": h["event"],
            "handler": h["handler"],
            "auth_type": h["auth_type"],
            "offline": h["offline"],
        }
        for h in call.portal["handlers"]
    ]


@method("event.unbind")
def event_unbind(call: Call) -> Any:
    require_admin(call)
    event = str(call.get("event") or "").upper()
    handler = str(call.get("handler") or "")
    if not event:
        raise BxError("ERROR_ARGUMENT", "Argument 'event' is null or empty", argument="event")
    before = len(call.portal["handlers"])
    call.portal["handlers"] = [
        h
        for h in call.portal["handlers"]
        if not (h["event"] == event and (not handler or h["handler"] == handler))
    ]
    return {"count": before - len(call.portal["handlers"])}
