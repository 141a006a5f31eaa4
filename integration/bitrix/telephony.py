"""Telephony methods of Bitrix24 REST (docs/bitrix24.md §5) used by the install and the calls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bitrixapp.models import Portal
from integration.bitrix import client
from integration.bitrix.batch import MAX_COMMANDS, BatchResult, command_string, merge_answer
from integration.core import inputs

logger = logging.getLogger(__name__)


def external_line_command(*, number: str, name: str) -> tuple[str, dict[str, Any]]:
    """`telephony.externalLine.add` as a batch command (install binds it with events/placements)."""
    return "telephony.externalLine.add", {"NUMBER": number, "NAME": name, "CRM_AUTO_CREATE": "Y"}


def external_line_add(portal: Portal, *, number: str, name: str) -> Any:
    """Add the app's line. Raises PermanentError with 'Line already exists' when it exists."""
    method, params = external_line_command(number=number, name=name)
    return client.call(portal, method, params)


def external_lines(portal: Portal) -> list[dict[str, Any]]:
    result = client.call(portal, "telephony.externalLine.get")
    return result if isinstance(result, list) else []


# --- externalCall (docs/bitrix24.md §5.2-§5.5) ----------------------------------------------------
# register and finish are NOT idempotent: register only dedups an *active* call with the same
# EXTERNAL_CALL_ID for 30 min, a second finish fails with "Call is not found". Callers keep the
# state (integration/calls/sync.py); these functions only build and send the requests.

TYPE_OUTGOING = 1
TYPE_INCOMING = 2
TYPE_CALLBACK = 4

#: Start of the description finish/attachRecord answer with for a CALL_ID that is not active.
CALL_NOT_FOUND = "call is not found"


def register_command(
    *,
    user_id: int,
    phone_number: str,
    call_type: int,
    external_call_id: str,
    line_number: str = "",
    call_start: str = "",
    crm_create: bool = False,
    show: bool = True,
    crm_entity_type: str = "",
    crm_entity_id: int | None = None,
    call_list_id: int | None = None,
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "USER_ID": user_id,
        "PHONE_NUMBER": phone_number,
        "TYPE": call_type,
        "EXTERNAL_CALL_ID": external_call_id,
        # PHP casts flags with (bool): send 0/1, never "false" (docs/bitrix24.md §5).
        "CRM_CREATE": 1 if crm_create else 0,
        "SHOW": 1 if show else 0,
    }
    if line_number:
        params["LINE_NUMBER"] = line_number
    if call_start:
        params["CALL_START_DATE"] = call_start
    if crm_entity_type and crm_entity_id:
        params["CRM_ENTITY_TYPE"] = crm_entity_type
        params["CRM_ENTITY_ID"] = crm_entity_id
    if call_list_id:
        # Links the call to a native call list (docs/agents.md §2.1).
        params["CALL_LIST_ID"] = call_list_id
    return "telephony.externalCall.register", params


def finish_command(
    *,
    call_id: str,
    user_id: int | None,
    duration: int,
    status_code: str,
    failed_reason: str = "",
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "CALL_ID": call_id,
        "DURATION": max(0, int(duration)),
        "STATUS_CODE": status_code,
    }
    if user_id:
        params["USER_ID"] = user_id
    if failed_reason:
        params["FAILED_REASON"] = failed_reason[:255]
    return "telephony.externalCall.finish", params


def register(portal: Portal, **fields: Any) -> dict[str, Any]:
    """Register a call; returns {CALL_ID, CRM_ENTITY_TYPE, CRM_ENTITY_ID, ...}."""
    method, params = register_command(**fields)
    result = client.call(portal, method, params)
    return result if isinstance(result, dict) else {}


def finish(portal: Portal, **fields: Any) -> dict[str, Any]:
    """Finish a registered call; returns the statistic record (CRM_ACTIVITY_ID...).

    Raises PermanentError whose description starts with "Call is not found" when the call is not
    active (never registered, or already finished).
    """
    method, params = finish_command(**fields)
    result = client.call(portal, method, params)
    return result if isinstance(result, dict) else {}


def attach_record(portal: Portal, *, call_id: str, filename: str, content_b64: str) -> int | None:
    """Attach a wav/mp3 record to a *finished* call (Bitrix24 files it on the portal's Drive).

    A repeat replaces the record, so retrying is safe. Returns the Drive FILE_ID.
    """
    result = client.call(
        portal,
        "telephony.externalCall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": filename, "FILE_CONTENT": content_b64},
    )
    return inputs.positive_id_or_none(result.get("FILE_ID")) if isinstance(result, dict) else None


def card_show(portal: Portal, *, call_id: str, user_ids: list[int]) -> bool:
    """Open the call card; False (not an error) once the call is over (docs/bitrix24.md §5.5)."""
    return bool(
        client.call(
            portal, "telephony.externalCall.show", {"CALL_ID": call_id, "USER_ID": user_ids}
        )
    )


def card_hide(portal: Portal, *, call_id: str, user_ids: list[int]) -> bool:
    return bool(
        client.call(
            portal, "telephony.externalCall.hide", {"CALL_ID": call_id, "USER_ID": user_ids}
        )
    )


#: Callables(portal, rows) told of every searchCrmEntities answer: its ASSIGNED_BY carries the
#: responsible's TIMEMAN_STATUS, a free status reading (docs/agents.md §1.2). Registered at start-up
#: (agents); an observer's failure is logged and never fails the caller.
search_observers: list[Callable[[Portal, list[dict[str, Any]]], None]] = []


def search_crm_entities(portal: Portal, *, phone_number: str) -> list[dict[str, Any]]:
    """CRM entities with this number, contacts first, and ASSIGNED_BY_ID (docs/bitrix24.md §5.5)."""
    result = client.call(
        portal, "telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": phone_number}
    )
    rows = [row for row in result if isinstance(row, dict)] if isinstance(result, list) else []
    for observer in search_observers:
        try:
            observer(portal, rows)
        except Exception:  # an observer must never fail call work
            logger.exception("searchCrmEntities observer failed")
    return rows


def is_call_not_found(error: Exception | dict[str, Any]) -> bool:
    """Does this error (raised or a batch `result_error` entry) say the call is not active?"""
    if isinstance(error, dict):
        text = f"{error.get('error', '')} {error.get('error_description', '')}"
    else:
        text = f"{getattr(error, 'extra', {}).get('description', '')} {error}"
    return CALL_NOT_FOUND in text.lower() and "statistic table" not in text.lower()


def result_ref(key: str, name: str) -> str:
    """`$result[key][name]`: an earlier batch command's result field, filled in by Bitrix24."""
    return f"$result[{key}][{name}]"


def batch_send(portal: Portal, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResult:
    """One `batch` request (≤50 commands) whose parameters may hold `result_ref` values.

    References are percent-encoded like every other value: Bitrix24 fills them in after it
    decodes a command (issue 19: the official b24pysdk relies on it; the sandbox accepts the
    encoded and the raw form alike).
    """
    if len(commands) > MAX_COMMANDS:
        raise ValueError(f"at most {MAX_COMMANDS} commands per batch request")
    cmd = {key: command_string(method, params) for key, (method, params) in commands.items()}
    answer = client.call(portal, "batch", {"halt": 0, "cmd": cmd})
    result = BatchResult()
    merge_answer(result, answer, portal=portal, methods={k: m for k, (m, _) in commands.items()})
    return result
