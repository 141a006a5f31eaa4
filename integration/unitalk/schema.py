"""Validation of Unitalk webhook bodies ("Standard JSON", docs/unitalk.md §4.3).

`event_parse` turns a body into a `WebhookEvent` or raises `PayloadError` naming the field that
is missing or wrong, so the sender (or whoever configured the cabinet) can see what to fix.
Form bodies ("custom template") are first mapped onto the JSON shape by `form_to_payload`.
Unknown extra fields are kept: the payload is stored raw and only what we use is checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from integration.core import inputs
from integration.unitalk import names

MAX_ID_LENGTH = 64
MAX_NUMBER_LENGTH = 64
MAX_META_LENGTH = 1000  # calls/originateNew documents meta as "string <= 1000 chars"
MAX_SECONDS = 7 * 24 * 3600


class PayloadError(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    call_id: str
    call: dict[str, Any]


def _require(call: Mapping[str, Any], key: str) -> Any:
    if key not in call or call[key] is None:
        raise PayloadError(f"call.{key} is required", field=f"call.{key}")
    return call[key]


def _string(value: Any, field: str, *, max_length: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a string", field=field)
    if len(value) > max_length:
        raise PayloadError(f"{field} is longer than {max_length} characters", field=field)
    if not allow_empty and not value.strip():
        raise PayloadError(f"{field} must not be empty", field=field)
    return value


def _call_id(value: Any, field: str) -> str:
    # Numbers in the docs' example; tolerate the same number sent as a digit string.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(f"{field} must be a number or a string", field=field)
    text = str(value).strip()
    if not text or len(text) > MAX_ID_LENGTH or not re.fullmatch(r"[\w.:-]+", text):
        raise PayloadError(f"{field} is not a valid call id", field=field)
    return text


def _whole(value: Any, field: str, *, maximum: int = inputs.INT32_MAX) -> int | None:
    """A whole number (int or ASCII digits, integration.core.inputs) within 0..maximum, or None."""
    if value is None:
        return None
    try:
        return inputs.parse_int(value, field=field, maximum=maximum)
    except inputs.InputError as exc:
        raise PayloadError(exc.message, field=field) from None


def _count(value: Any, field: str) -> int | None:
    return _whole(value, field, maximum=MAX_SECONDS)


def _date(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a 'YYYY-MM-DD HH:MM:SS' string", field=field)
    try:
        datetime.strptime(value, names.DATETIME_FORMAT)
    except ValueError:
        raise PayloadError(f"{field} must look like 'YYYY-MM-DD HH:MM:SS'", field=field) from None
    return value


def event_parse(body: Any) -> WebhookEvent:
    """Validate a decoded webhook body. Raises PayloadError(message, field=...)."""
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object", field="body")
    event = body.get("event")
    if event is None:
        raise PayloadError("event is required", field="event")
    if not isinstance(event, str) or event not in names.EVENTS:
        raise PayloadError(f"event must be one of {', '.join(names.EVENTS)}", field="event")
    call = body.get("call")
    if call is None:
        raise PayloadError("call is required", field="call")
    if not isinstance(call, dict):
        raise PayloadError("call must be an object", field="call")

    call_id = _call_id(_require(call, "id"), "call.id")
    _whole(call.get(names.FIELD_DBID), f"call.{names.FIELD_DBID}", maximum=inputs.INT64_MAX)
    direction = _require(call, "direction")
    if direction not in names.DIRECTIONS:
        raise PayloadError(
            f"call.direction must be one of {', '.join(names.DIRECTIONS)}", field="call.direction"
        )
    _string(_require(call, "from"), "call.from", max_length=MAX_NUMBER_LENGTH)
    to = call.get("to", [])
    if to is None:
        to = []
    if not isinstance(to, list):
        raise PayloadError("call.to must be a list of numbers", field="call.to")
    for index, number in enumerate(to):
        _string(number, f"call.to[{index}]", max_length=MAX_NUMBER_LENGTH)
    _date(_require(call, "date"), "call.date")
    for key in ("secondsFullTime", "secondsTalk"):
        _count(call.get(key), f"call.{key}")
    _whole(call.get("cause"), "call.cause")
    if event == names.EVENT_END:
        # `state` is null before CALL_END and set on it (docs/unitalk.md §4.3).
        _string(_require(call, "state"), "call.state", max_length=32, allow_empty=False)
    elif call.get("state") is not None:
        _string(call["state"], "call.state", max_length=32)
    for key in ("outerNumber", "lastGroupName", "source"):
        if call.get(key) is not None:
            _string(call[key], f"call.{key}", max_length=255)
    meta = call.get(names.FIELD_META)
    if meta is not None:
        _string(meta, f"call.{names.FIELD_META}", max_length=MAX_META_LENGTH)
    link = call.get("link")
    if link not in (None, ""):
        _string(link, "call.link", max_length=1000)
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PayloadError("call.link must be an http(s) URL", field="call.link")
    return WebhookEvent(event=event, call_id=call_id, call=call)


def form_to_payload(form: Mapping[str, str]) -> dict[str, Any]:
    """Map a "custom template" form body (names.FORM_FIELDS) onto the Standard JSON shape."""
    call: dict[str, Any] = {}
    to: list[tuple[int, str]] = []
    for key, value in form.items():
        if key in names.FORM_FIELDS:
            call[names.FORM_FIELDS[key]] = value
        elif key.startswith(names.FORM_TO_PREFIX):
            # "call_to_0".."call_to_99"; other suffixes are unknown extras, kept out of `to`.
            index = key[len(names.FORM_TO_PREFIX) :]
            if re.fullmatch(r"[0-9]{1,2}", index):
                to.append((int(index), value))
    call["to"] = [number for _, number in sorted(to)]
    for key in ("secondsTalk", "secondsFullTime", "cause", "dbid"):
        if call.get(key) == "":
            call[key] = None
    if call.get("state") == "":
        call["state"] = None
    return {"event": form.get(names.FORM_EVENT_FIELD), "call": call}
