"""What a manager sends to create a campaign or upload numbers, checked field by field.

Every error names its field and nothing is stored unless all fields are valid (the views answer
400 with the errors).
"""

from __future__ import annotations

import csv
import io
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integration.campaigns.models import Campaign
from integration.campaigns.phones import PhoneInvalid, phone_normalise
from integration.campaigns.services import Entry
from integration.core import inputs

MAX_AGENTS = 200
MAX_DO_NOT_CALL = 10_000
CSV_MAX_ROWS = 10_000
CSV_MAX_BYTES = 1_000_000


def _time(value: Any, field: str, errors: dict[str, str]) -> time | None:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError):
        errors[field] = "a time as HH:MM"
        return None


def _ids(value: Any, field: str, errors: dict[str, str], *, limit: int) -> list[int]:
    if not isinstance(value, list) or len(value) > limit:
        errors[field] = f"a list of at most {limit} user ids"
        return []
    try:
        return [inputs.parse_int(v, field=field, minimum=1, maximum=2**31 - 1) for v in value]
    except inputs.InputError:
        errors[field] = "user ids are positive numbers"
        return []


def campaign_fields_parse(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The create form → (Campaign fields, errors by field)."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        errors["name"] = "a name of 1-255 characters"
    else:
        fields["name"] = name.strip()
    source = body.get("source", Campaign.Source.MANUAL)
    if source not in Campaign.Source.values:
        errors["source"] = f"one of {', '.join(Campaign.Source.values)}"
    fields["source"] = source
    params: dict[str, Any] = {}
    if source == Campaign.Source.CRM_FILTER:
        try:
            params["entity_type_id"] = inputs.parse_int(
                body.get("entity_type_id"), field="entity_type_id", minimum=1, maximum=2**31 - 1
            )
        except inputs.InputError:
            errors["entity_type_id"] = "1 lead, 2 deal, 3 contact, 4 company or a smart process id"
        flt = body.get("filter", {})
        if not isinstance(flt, dict):
            errors["filter"] = "an object of crm.item.list filter fields"
        params["filter"] = flt if isinstance(flt, dict) else {}
        stages = body.get("stages", [])
        if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
            errors["stages"] = "a list of stage ids"
        elif stages:
            params["stages"] = stages
    elif source == Campaign.Source.CALL_LIST:
        try:
            params["list_id"] = inputs.parse_int(
                body.get("list_id"), field="list_id", minimum=1, maximum=2**31 - 1
            )
        except inputs.InputError:
            errors["list_id"] = "the id of a Bitrix24 call list"
    fields["source_params"] = params
    fields["agent_user_ids"] = _ids(body.get("agents", []), "agents", errors, limit=MAX_AGENTS)
    zone = body.get("timezone", "Europe/Kyiv")
    try:
        ZoneInfo(str(zone))
        fields["timezone"] = str(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = "an IANA time zone such as Europe/Kyiv"
    for key, default in (("window_start", "09:00"), ("window_end", "20:00")):
        fields[key] = _time(body.get(key, default), key, errors)
    try:
        fields["max_attempts"] = inputs.parse_int(
            body.get("max_attempts", 3), field="max_attempts", minimum=1, maximum=20
        )
    except inputs.InputError:
        errors["max_attempts"] = "a number from 1 to 20"
    todo = body.get("todo_on_failure", False)
    if not isinstance(todo, bool):
        errors["todo_on_failure"] = "true or false"
    fields["todo_on_failure"] = todo is True
    raw_dnc = body.get("do_not_call", [])
    if not isinstance(raw_dnc, list) or len(raw_dnc) > MAX_DO_NOT_CALL:
        errors["do_not_call"] = f"a list of at most {MAX_DO_NOT_CALL} phone numbers"
    else:
        try:
            fields["do_not_call"] = sorted({phone_normalise(str(p)) for p in raw_dnc})
        except PhoneInvalid as exc:
            errors["do_not_call"] = str(exc)
    return fields, errors


def csv_entries(raw: bytes) -> list[Entry]:
    """Rows of `phone[,anything]` (a header row is skipped). Raises InputError."""
    if len(raw) > CSV_MAX_BYTES:
        raise inputs.InputError(f"at most {CSV_MAX_BYTES} bytes", field="file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise inputs.InputError("a UTF-8 CSV file", field="file") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and not any(ch.isdigit() for ch in rows[0][0]):
        rows = rows[1:]  # header
    if not rows:
        raise inputs.InputError("the file has no numbers", field="file")
    if len(rows) > CSV_MAX_ROWS:
        raise inputs.InputError(f"at most {CSV_MAX_ROWS} rows", field="file")
    return [Entry(raw_phone=row[0].strip()[:64]) for row in rows]
