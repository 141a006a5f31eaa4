"""Unitalk API client: one small function per method, over `integration.core.http`.

Every request is a POST with the API key raw in `Authorization` (docs/unitalk.md §2.3),
paced by a budget per key that all processes share, and its answer mapped to our error classes
by `errors.ERROR_TABLE` whether Unitalk signals the error by HTTP status or by the 200
`{"status": "Error"}` envelope. No ORM here: the key comes in a `Credentials` whose callbacks
(built by `services.connection_credentials`) re-read it and record a refusal.

Call these from workers only: they may wait for a rate slot.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from integration.core import http, inputs, ratelimit
from integration.core.errors import CredentialsInvalidError, IntegrationError, ValidationError
from integration.unitalk import errors, names

logger = logging.getLogger(__name__)

SERVICE = errors.SERVICE


@dataclass
class Credentials:
    """The API key to use, plus what to do when Unitalk refuses it.

    `reload()` returns the key as stored now (an admin may have just replaced it).
    `on_invalid(key, reason)` records that `key` was refused for good; it may raise (e.g.
    `AuthExpiredError` when the stored key changed meanwhile, so the caller retries soon).
    """

    api_key: str
    reload: Callable[[], str] | None = None
    on_invalid: Callable[[str, str], None] | None = field(default=None)


def budget_key(api_key: str) -> str:
    """The shared rate-budget name of a key (a digest: keys never reach Redis or logs)."""
    return "unitalk:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _url(path: str) -> str:
    return settings.UNITALK_API_URL + "/" + path.lstrip("/")


def _wait_for_budget(api_key: str) -> str:
    bucket = budget_key(api_key)
    parked = ratelimit.parked_for(bucket)
    if parked > 0:
        # Unitalk told us to back off recently: do not spend a request to hear it again.
        raise errors.build(
            errors.RATE_LIMITED, "unitalk: key is backing off after overload", retry_after=parked
        )
    ratelimit.acquire(
        bucket,
        burst=settings.UNITALK_RATE_BURST,
        per_second=settings.UNITALK_RATE_PER_SECOND,
        # Never asleep past RATE_MAX_SLEEP_S: a longer wait reschedules the job
        # holding a ticket for its slot (at most this far ahead).
        max_wait=settings.UNITALK_RATE_MAX_WAIT_S,
        reserve_slots=settings.UNITALK_RATE_INTERACTIVE_RESERVE_SLOTS,
    )
    return bucket


def _overloaded(bucket: str, code: str, message: str, *, retry_after: float | None, status: int):
    wait = retry_after if retry_after is not None else settings.UNITALK_OVERLOAD_BACKOFF_S
    ratelimit.park(bucket, wait)
    logger.warning("unitalk overloaded, key parked for %.0fs", wait)
    return errors.build(code, message, status=status, retry_after=wait)


def _retry_after(response: http.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _parse(response: http.Response, *, bucket: str, method: str) -> Any:
    """The decoded body, or the error the table gives for the answer."""
    status = response.status_code
    code = errors.code_for_status(status)
    if code == errors.HTTP_429:
        raise _overloaded(
            bucket,
            code,
            f"unitalk {method}: HTTP 429",
            retry_after=_retry_after(response),
            status=status,
        )
    if code:
        raise errors.build(code, f"unitalk {method}: HTTP {status}", status=status)
    try:
        body = response.json()
    except ValueError:
        raise errors.build(
            errors.NOT_JSON, f"unitalk {method}: answer is not JSON", status=status
        ) from None
    if isinstance(body, dict) and body.get("status") == names.STATUS_ERROR:
        message = str(body.get("message") or "")
        code = errors.code_for_message(message)
        text = f"unitalk {method}: {message or 'error without message'}"
        extra = {"data": body["data"]} if body.get("data") is not None else None
        if code == errors.RATE_LIMITED:
            raise _overloaded(bucket, code, text, retry_after=None, status=status)
        raise errors.build(code, text, status=status, extra=extra)
    return body


def _send(api_key: str, method: str, *, json_body: Any = None, form: Any = None) -> Any:
    bucket = _wait_for_budget(api_key)
    response = http.request(
        "POST",
        _url(method),
        service=SERVICE,
        json=json_body if form is None else None,
        data=form,
        headers={"Authorization": api_key, "Accept": "application/json"},
    )
    return _parse(response, bucket=bucket, method=method)


def _post(creds: Credentials, method: str, *, json_body: Any = None, form: Any = None) -> Any:
    """POST one method; on a refused key re-read it and try once more, then give up for good.

    Raises `CredentialsInvalidError` (pause key "unitalk") after `creds.on_invalid` recorded the
    refusal, and the other `errors.ERROR_TABLE` classes as they come.
    """
    try:
        return _send(creds.api_key, method, json_body=json_body, form=form)
    except CredentialsInvalidError:
        if creds.reload is not None:
            creds.api_key = creds.reload() or creds.api_key
    try:
        return _send(creds.api_key, method, json_body=json_body, form=form)
    except CredentialsInvalidError as exc:
        if creds.on_invalid is not None:
            creds.on_invalid(creds.api_key, exc.message)
        raise


def _command(body: Any, method: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.build(errors.UNEXPECTED_SHAPE, f"unitalk {method}: answer is not an object")
    return body


def _digits(number: str) -> str:
    # Unitalk numbers are digits only, country code included, no "+" (docs/unitalk.md §2.6).
    return re.sub(r"\D", "", number or "")


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is not None:
        raise ValueError("Unitalk timestamps are local wall-clock: pass naive local datetimes")
    return moment.strftime(names.DATETIME_FORMAT)


# --- Methods ----------------------------------------------------------------------------------


def direct_call(creds: Credentials, *, sip: str, number: str, meta: str = "") -> dict[str, Any]:
    """Click-to-call: ring inner line `sip`, then dial `number` (`meta` is echoed in webhooks)."""
    params = {"sip": str(sip), "number": _digits(number), "meta": meta}
    if names.DIRECT_CALL_AS_FORM:
        return _command(_post(creds, "phones/directCall", form=params), "phones/directCall")
    return _command(_post(creds, "phones/directCall", json_body=params), "phones/directCall")


def originate(
    creds: Credentials,
    *,
    phone: str,
    outer_line: str | None = None,
    meta: str | None = None,
    audio_id: int | None = None,
    audios: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """API/robot call to `phone` (calls/originateNew); `outer_line` None = Unitalk's rules."""
    if meta is not None and len(meta) > 1000:
        raise ValidationError("originate: meta is limited to 1000 characters", service=SERVICE)
    body: dict[str, Any] = {"phone": _digits(phone), "outerLine": outer_line, "meta": meta}
    if audio_id is not None:
        body["mainAudio"] = {"id": audio_id}
    if audios is not None:
        body["audios"] = audios
    return _command(_post(creds, "calls/originateNew", json_body=body), "calls/originateNew")


def users_list(creds: Credentials) -> list[dict[str, Any]]:
    """Unitalk users (operators) with their inner `line`, bare or wrapped (docs/unitalk.md §3.6)."""
    body = _post(creds, "users/list", json_body={})
    if isinstance(body, list):
        return [u for u in body if isinstance(u, dict)]
    if isinstance(body, dict):
        for key in names.USERS_LIST_KEYS:
            if isinstance(body.get(key), list):
                return [u for u in body[key] if isinstance(u, dict)]
    raise errors.build(errors.UNEXPECTED_SHAPE, "unitalk users/list: no list of users in answer")


def autodial_action(creds: Credentials, *, action: str, **fields: Any) -> dict[str, Any]:
    """One autodialer action (`action` is a key of `names.AUTODIAL_ACTIONS`, e.g. "add_numbers")."""
    try:
        name = names.AUTODIAL_ACTIONS[action]
    except KeyError:
        raise ValueError(f"unknown autodialer action {action!r}") from None
    return _command(
        _post(creds, "autodial/action", json_body={"action": name, **fields}), "autodial/action"
    )


def history_get(
    creds: Credentials,
    *,
    date_from: datetime,
    date_to: datetime,
    filters: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every call between two naive local datetimes (inclusive), newest first as Unitalk sends.

    Pages with limit/offset until `offset >= count`. Unitalk silently stops at
    UNITALK_HISTORY_CAP calls per query while `count` still tells the total (docs/unitalk.md §3.1),
    so a window holding more than that is split in halves until each half fits.
    """
    seen: dict[str, dict[str, Any]] = {}
    for call in _history_window(creds, date_from, date_to, filters or {}):
        seen.setdefault(str(call.get("dbid") or call.get("id")), call)
    return list(seen.values())


def _history_split(
    creds: Credentials, date_from: datetime, date_to: datetime, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    middle = date_from + (date_to - date_from) / 2
    middle = middle.replace(microsecond=0)
    logger.info("history window over the cap, splitting at %s", middle)
    return _history_window(
        creds, middle + timedelta(seconds=1), date_to, filters
    ) + _history_window(creds, date_from, middle, filters)


def _history_window(
    creds: Credentials, date_from: datetime, date_to: datetime, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    cap = settings.UNITALK_HISTORY_CAP
    page_size = min(settings.UNITALK_HISTORY_PAGE_SIZE, cap)
    splittable = date_to - date_from >= timedelta(seconds=1)
    calls: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = _post(
            creds,
            "history/get",
            json_body={
                "dateFrom": _stamp(date_from),
                "dateTo": _stamp(date_to),
                "limit": page_size,
                "offset": offset,
                "filter": filters,
            },
        )
        if not isinstance(body, dict) or not isinstance(body.get("calls"), list):
            raise errors.build(errors.UNEXPECTED_SHAPE, "unitalk history/get: no `calls` list")
        if body.get("warning"):
            logger.warning("unitalk history/get warning: %s", body["warning"])
        count = int(body.get("count") or 0)
        if offset == 0 and count > cap and splittable:
            return _history_split(creds, date_from, date_to, filters)
        page = [c for c in body["calls"] if isinstance(c, dict)]
        calls += page
        offset += len(page)
        if offset >= count:
            return calls
        if not page or offset >= cap:
            # Fewer calls than `count` promised: the silent cap. Narrow the window.
            if splittable:
                return _history_split(creds, date_from, date_to, filters)
            logger.error("unitalk history/get: %d calls in one second exceed the cap", count)
            return calls


@dataclass(frozen=True)
class Recording:
    content: bytes
    content_type: str


def recording_download(creds: Credentials, *, url: str, max_bytes: int | None = None) -> Recording:
    """Fetch a call recording from its (expiring) link: first without auth, then with the key.

    The key is only ever sent to Unitalk's own hosts. Raises PermanentError subclasses from
    ERROR_TABLE for gone / refused / non-audio / oversized recordings, TransientError otherwise.
    """
    limit = max_bytes or settings.UNITALK_RECORDING_MAX_BYTES
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"recording link is not an http(s) URL: {url[:100]}", service=SERVICE)
    response = _fetch_recording(url, headers={}, api_key=creds.api_key)
    if response.status_code in (401, 403) or not _is_audio(response):
        response.close()
        if not _may_send_key(parts.hostname):
            raise errors.build(errors.RECORDING_REFUSED, "recording link refused (foreign host)")
        response = _fetch_recording(
            url, headers={"Authorization": creds.api_key}, api_key=creds.api_key
        )
    try:
        return _read_recording(response, limit)
    finally:
        response.close()


def _fetch_recording(url: str, *, headers: dict[str, str], api_key: str) -> http.Response:
    _wait_for_budget(api_key)
    return http.request("GET", url, service=SERVICE, headers=headers, stream=True)


def _is_audio(response: http.Response) -> bool:
    kind = response.headers.get("Content-Type", "").lower()
    return response.status_code == 200 and kind.startswith(names.RECORDING_CONTENT_TYPES)


def _may_send_key(host: str) -> bool:
    api_host = urlsplit(settings.UNITALK_API_URL).hostname or ""
    host = host.lower()
    return host == api_host or any(
        host == suffix or host.endswith("." + suffix)
        for suffix in names.RECORDING_KEY_HOST_SUFFIXES
    )


def _read_recording(response: http.Response, limit: int) -> Recording:
    status = response.status_code
    if status in (404, 410):
        raise errors.build(
            errors.RECORDING_GONE, f"recording link answered {status}", status=status
        )
    if status in (401, 403):
        raise errors.build(
            errors.RECORDING_REFUSED, "recording link refused the key", status=status
        )
    code = errors.code_for_status(status)
    if code:
        raise errors.build(code, f"recording link answered HTTP {status}", status=status)
    if not _is_audio(response):
        kind = response.headers.get("Content-Type", "")
        raise errors.build(errors.RECORDING_NOT_AUDIO, f"recording link sent {kind or 'no type'}")
    header = response.headers.get("Content-Length", "")
    try:
        # The one integer parser (docs/security.md "Numbers and JSON from outside").
        declared = inputs.parse_int_or_none(
            header, field="Content-Length", maximum=inputs.INT64_MAX
        )
    except inputs.InputError:
        declared = None  # not a length: the bytes below are counted against the cap all the same
    if declared is not None and declared > limit:
        raise errors.build(errors.RECORDING_TOO_LARGE, f"recording of {declared} bytes over cap")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > limit:
            raise errors.build(errors.RECORDING_TOO_LARGE, f"recording over {limit} bytes")
        chunks.append(chunk)
    return Recording(
        content=b"".join(chunks), content_type=response.headers.get("Content-Type", "")
    )


__all__ = [
    "Credentials",
    "IntegrationError",
    "Recording",
    "autodial_action",
    "budget_key",
    "direct_call",
    "history_get",
    "originate",
    "recording_download",
    "users_list",
]


def operator_status_get(creds: Credentials, *, line: str) -> dict[str, Any]:
    """Read an operator's status (the capability probe). UNCONFIRMED API: names.py."""
    body = {names.OPERATOR_STATUS_LINE_FIELD: _digits(line)}
    return _command(
        _post(creds, names.OPERATOR_STATUS_GET, json_body=body), names.OPERATOR_STATUS_GET
    )


def operator_status_set(creds: Credentials, *, line: str, status: str) -> dict[str, Any]:
    """Set an operator's status to `status` (a value of names.OPERATOR_STATUS_VALUES)."""
    body = {names.OPERATOR_STATUS_LINE_FIELD: _digits(line), names.OPERATOR_STATUS_FIELD: status}
    return _command(
        _post(creds, names.OPERATOR_STATUS_SET, json_body=body), names.OPERATOR_STATUS_SET
    )


def is_unknown_method(exc: Exception) -> bool:
    """Whether an error says the method does not exist (capability absent, not a fault)."""
    if getattr(exc, "status", None) == 404:
        return True
    text = str(getattr(exc, "message", "") or exc).lower()
    return any(phrase in text for phrase in names.UNKNOWN_METHOD_PHRASES)
