"""CRM methods of Bitrix24 REST used by the call pipeline (docs/bitrix24.md §7.3)."""

from __future__ import annotations

from typing import Any

from bitrixapp.models import Portal
from integration.bitrix import client
from integration.core import inputs

#: Activities created by telephony.externalCall.finish carry this provider (SRC voximplant).
CALL_PROVIDER = "VOXIMPLANT_CALL"


def timeline_comment_add(portal: Portal, *, entity_type: str, entity_id: int, comment: str) -> int:
    """Add a comment to a CRM entity's timeline. `fields` must be lowercase (crm 23.100.0+)."""
    result = client.call(
        portal,
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_TYPE": entity_type.lower(),
                "ENTITY_ID": entity_id,
                "COMMENT": comment,
            }
        },
    )
    return inputs.positive_id_or_none(result) or 0


def call_activity_find(
    portal: Portal, *, start_time: str, user_id: int, phone_digits: str
) -> dict[str, Any] | None:
    """The call activity `finish` created for a call that started at `start_time`, if any.

    Used after an ambiguous register+finish batch (the answer was lost): Bitrix24 has no lookup
    by EXTERNAL_CALL_ID for finished calls, but the activity keeps our CALL_START_DATE and the
    client's number, and its ORIGIN_ID is the CALL_ID. UNCONFIRMED on a live portal: the exact
    START_TIME format Bitrix24 stores (it may normalise the time zone).
    """
    rows = client.list_all(
        portal,
        "crm.activity.list",
        {
            "filter": {
                "PROVIDER_ID": CALL_PROVIDER,
                "START_TIME": start_time,
                "RESPONSIBLE_ID": user_id,
            },
            "select": ["ID", "ORIGIN_ID", "SUBJECT", "COMMUNICATIONS", "START_TIME"],
        },
        max_rows=50,
    )
    for row in rows:
        if not isinstance(row, dict):
            continue
        numbers = [str(row.get("SUBJECT") or "")] + [
            str(c.get("VALUE") or "")
            for c in row.get("COMMUNICATIONS") or []
            if isinstance(c, dict)
        ]
        if any(
            phone_digits and phone_digits in "".join(ch for ch in n if ch.isdigit())
            for n in numbers
        ):
            return row
    return None


def call_id_from_activity(activity: dict[str, Any]) -> str:
    # Real portals prefix voximplant activities' ORIGIN_ID with "VI_" (UNCONFIRMED for REST apps).
    origin = str(activity.get("ORIGIN_ID") or "")
    return origin.removeprefix("VI_")
