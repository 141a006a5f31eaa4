"""The `im` scope: system and personal notifications (docs/bitrix24.md §7.1)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import user_by_id
from sandbox.bitrix.rest import BxError, Call, iso_now, method


@method("im.notify.system.add", "im.notify.personal.add", "im.notify")
def notify_add(call: Call) -> Any:
    user_id = call.get("USER_ID")
    message = str(call.get("MESSAGE") or "").strip()
    if not user_id or user_by_id(call, user_id) is None:
        raise BxError("USER_ID_EMPTY", "User ID can't be empty")
    if not message:
        raise BxError("MESSAGE_EMPTY", "Message can't be empty")
    tag = str(call.get("TAG") or "")
    notes = call.portal["notifications"]
    if tag:
        # Re-using a TAG replaces the older notices with that tag (docs/bitrix24.md §7.1).
        call.portal["notifications"] = notes = [n for n in notes if n["TAG"] != tag]
    note_id = call.next_id("notify")
    notes.append(
        {
            "ID": note_id,
            "USER_ID": str(user_id),
            "MESSAGE": message,
            "TAG": tag,
            "SUB_TAG": str(call.get("SUB_TAG") or ""),
            "KIND": "personal" if "personal" in str(call.get("_method", "")) else "system",
            "DATE": iso_now(),
        }
    )
    return note_id
