"""Bitrix24 REST client: one portal, one method call, over `integration.core.http`.

    call(portal, "crm.lead.get", {"id": 7})            -> result
    call_envelope(portal, "crm.lead.list", {...})      -> Envelope(result, next, total, time)
    list_all(portal, "crm.lead.list", {...}, fast=True) -> every row
    batch(...)                                          -> see integration.bitrix.batch

Before each request: the method must not be parked (429 OPERATION_TIME_LIMIT parks one method
until operating_reset_at), and a slot is taken from the portal's shared leaky bucket with a small
safety margin, so 503 QUERY_LIMIT_EXCEEDED stays rare. The access token is refreshed through
`integration.bitrix.oauth` (single-flight) on expired_token / invalid_token, and the call is retried once.
A 302 (renamed portal) is followed once to an allowed host and the stored endpoint updated.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from bitrixapp.models import Portal
from integration.bitrix import errors, hosts, oauth
from integration.core import http, ratelimit
from integration.core.errors import PausedError, RateLimitedError, TransientError

logger = logging.getLogger(__name__)

PAGE_SIZE = 50  # fixed by Bitrix24 for list methods (docs/bitrix24.md §2.4)


@dataclass
class Envelope:
    """A successful answer: `result` plus the list and timing fields Bitrix24 lifts out of it."""

    result: Any
    next: int | None = None
    total: int | None = None
    time: dict[str, Any] = field(default_factory=dict)


def bucket_key(portal: Portal) -> str:
    return f"bitrix:{portal.member_id}"


def method_key(portal: Portal, method: str) -> str:
    return f"bitrix:{portal.member_id}:{method.lower()}"


def _rate_share(portal: Portal) -> tuple[int, float]:
    """Our share of the portal's bucket: burst and drain minus the safety margins."""
    burst = max(1, portal.rate_burst - settings.BITRIX24_RATE_SAFETY_SLOTS)
    return burst, max(0.01, portal.rate_drain * settings.BITRIX24_RATE_SAFETY_FACTOR)


def rate_acquire(portal: Portal) -> None:
    """Wait for a slot of the portal's bucket (shared by every process), minus a safety margin."""
    burst, per_second = _rate_share(portal)
    ratelimit.acquire(
        bucket_key(portal),
        burst=burst,
        per_second=per_second,
        # Never asleep past RATE_MAX_SLEEP_S: a longer wait reschedules the job
        # holding a ticket for its slot (at most this far ahead).
        max_wait=settings.BITRIX24_RATE_MAX_WAIT_S,
    )


def call(portal: Portal, method: str, params: dict[str, Any] | None = None) -> Any:
    """Call one REST method and return its `result`. Raises our error classes (errors.py)."""
    return call_envelope(portal, method, params).result


def call_envelope(portal: Portal, method: str, params: dict[str, Any] | None = None) -> Envelope:
    """Call one REST method; return the whole success envelope.

    Raises RateLimitedError at once (no request) while the method is parked; AuthExpiredError if
    the call still fails with a token error after one refresh-and-retry; PortalStateError /
    CredentialsInvalidError (pause_key "bitrix") when the portal cannot work; TransientError /
    PermanentError per ERROR_TABLE.
    """
    parked = ratelimit.parked_for(method_key(portal, method))
    if parked > 0:
        raise RateLimitedError(
            f"bitrix {method}: parked after OPERATION_TIME_LIMIT",
            retry_after=parked,
            code="OPERATION_TIME_LIMIT",
            service=errors.SERVICE,
            extra={"method": method},
        )
    token = oauth.access_token_current(portal=portal)
    for attempt in (1, 2):
        status, body = _post(portal, method, params or {}, token)
        if isinstance(body, dict) and "error" not in body and "result" in body:
            envelope = Envelope(
                result=body["result"],
                next=_int_or_none(body.get("next")),
                total=_int_or_none(body.get("total")),
                time=body["time"] if isinstance(body.get("time"), dict) else {},
            )
            if method.lower() != "batch":
                # A batch's outer time repeats its sub-commands' counters, which batch.py
                # notes per command from result_time; `batch` itself is not accounted (docs/bitrix24.md §4.2).
                ledger_note(portal, method, envelope.time)
            return envelope
        error = _error_from(status, body, method, portal)
        if getattr(error, "code", None) in errors.AUTH_CODES and attempt == 1:
            # Refresh (or pick up another worker's refresh) and retry exactly once.
            token = oauth.token_refresh(portal=portal, failed_token=token)
            continue
        if isinstance(error, PausedError):
            oauth.portal_suspend(portal=portal, error=error)
        raise error
    raise AssertionError("unreachable")  # pragma: no cover


def call_as(portal: Portal, method: str, params: dict[str, Any] | None, *, token: str) -> Any:
    """Call with someone else's token (a user's AUTH_ID from an iframe POST): no refresh, no retry.

    Used to check that an AUTH_ID is genuine for this portal. Raises like `call_envelope`.
    """
    status, body = _post(portal, method, params or {}, token)
    if isinstance(body, dict) and "error" not in body and "result" in body:
        return body["result"]
    raise _error_from(status, body, method, portal)


def list_all(
    portal: Portal,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    fast: bool = False,
    id_field: str = "ID",
    max_rows: int | None = None,
) -> list[Any]:
    """Every row of a list method.

    `fast=True` is Bitrix24's recommended way for big lists (docs/bitrix24.md §2.4): no COUNT
    query (`start=-1`), ordered by ID, paging by `filter[>ID]=<last>` until a short page.
    Otherwise offset paging with `start=<next>` until `next` disappears.
    """
    base = copy.deepcopy(params or {})
    rows: list[Any] = []
    if fast:
        base["order"] = {id_field: "ASC"}
        base["start"] = -1
        last: Any = 0
        while True:
            page_params = copy.deepcopy(base)
            page_params["filter"] = {**(base.get("filter") or {}), f">{id_field}": last}
            page = _rows(call_envelope(portal, method, page_params).result)
            rows.extend(page)
            if len(page) < PAGE_SIZE or (max_rows and len(rows) >= max_rows):
                break
            last = page[-1][id_field] if isinstance(page[-1], dict) else page[-1]
    else:
        start = 0
        while True:
            page_params = {**base, "start": start}
            envelope = call_envelope(portal, method, page_params)
            rows.extend(_rows(envelope.result))
            if envelope.next is None or (max_rows and len(rows) >= max_rows):
                break
            start = envelope.next
    return rows[:max_rows] if max_rows else rows


def _rows(result: Any) -> list[Any]:
    # Most list methods return a list; newer ones (crm.item.list) wrap it: {"items": [...]}.
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        return list(result.values())
    return []


def _post(portal: Portal, method: str, params: dict[str, Any], token: str) -> tuple[int, Any]:
    """One POST (JSON body, token as `auth`), following at most one domain-change redirect."""
    moved = False
    while True:
        rate_acquire(portal)
        url = f"{portal.client_endpoint.rstrip('/')}/{method}"
        response = http.request("POST", url, service=errors.SERVICE, json={**params, "auth": token})
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            new_endpoint = _endpoint_from_location(location)
            if moved or not new_endpoint:
                raise TransientError(
                    f"bitrix {method}: redirect to {urlsplit(location).hostname!r} not followed",
                    code=errors.HTTP_3XX,
                    status=response.status_code,
                    service=errors.SERVICE,
                )
            oauth.portal_endpoint_move(
                portal=portal,
                client_endpoint=new_endpoint,
                domain=urlsplit(new_endpoint).netloc,
            )
            moved = True
            continue
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body


def _endpoint_from_location(location: str) -> str:
    """`https://new.bitrix24.com/rest/crm.lead.get` → `https://new.bitrix24.com/rest/`, if allowed."""
    parts = urlsplit(location)
    if not parts.scheme or not hosts.host_allowed(parts.netloc):
        return ""
    return f"{parts.scheme}://{parts.netloc}/rest/"


def _error_from(status: int, body: Any, method: str, portal: Portal) -> Exception:
    if not isinstance(body, dict) or "error" not in body:
        if status == 429:
            return _operation_limit(portal, method, "(non-JSON 429)")
        if 200 <= status < 300 or status >= 500 or status == 0:
            return TransientError(
                f"bitrix {method}: unexpected non-JSON answer (http {status})",
                code=errors.NOT_JSON,
                status=status,
                service=errors.SERVICE,
            )
        return errors.error_build(
            code=None, description=f"non-JSON answer (http {status})", status=status, method=method
        )
    code = str(body.get("error") if body.get("error") is not None else "")
    description = str(body.get("error_description") or "")
    if code == "OPERATION_TIME_LIMIT":
        return _operation_limit(portal, method, description)
    if code == "QUERY_LIMIT_EXCEEDED":
        logger.warning("bitrix answered 503 QUERY_LIMIT_EXCEEDED despite the local limiter")
        # Its counter is over the plan's burst: ours now says the same, for every process.
        ratelimit.fill(
            bucket_key(portal), per_second=_rate_share(portal)[1], level=portal.rate_burst
        )
    return errors.error_build(code=code, description=description, status=status, method=method)


def _ledger_key(portal: Portal, method: str) -> str:
    return f"bitrix-operating:{portal.member_id}:{method.lower()}"


def ledger_note(portal: Portal, method: str, timing: Any) -> None:
    """Feed the per-method ledger from a `time` block (a call's, or a batch command's
    `result_time` entry); park the method before it hits 429.

    `operating_reset_at` may be missing (fast_bitrix24's recorded batch timings carry only
    `operating`): then a method over the threshold is parked for the default time.
    """
    if not isinstance(timing, dict) or timing.get("operating") is None:
        return
    try:
        operating_f = float(timing["operating"])
        reset_f = float(timing["operating_reset_at"]) if "operating_reset_at" in timing else None
    except (TypeError, ValueError):
        return
    if reset_f is not None:
        cache.set(_ledger_key(portal, method), reset_f, timeout=900)
    threshold = settings.BITRIX24_OPERATING_LIMIT_S * settings.BITRIX24_OPERATING_PARK_RATIO
    if operating_f >= threshold:
        if reset_f is not None:
            wait = max(1.0, reset_f - time.time())
        else:
            wait = settings.BITRIX24_OPERATING_DEFAULT_PARK_S
        ratelimit.park(method_key(portal, method), wait)
        logger.warning(
            "bitrix method near its operating limit; parked",
            extra={"method": method, "operating": operating_f, "wait_s": round(wait, 1)},
        )


def _operation_limit(portal: Portal, method: str, description: str) -> RateLimitedError:
    """429: park only this method until its oldest operating basket ends (docs/bitrix24.md §4.2)."""
    reset_at = cache.get(_ledger_key(portal, method))
    wait = float(reset_at) - time.time() if reset_at else 0.0
    if wait <= 0:
        wait = settings.BITRIX24_OPERATING_DEFAULT_PARK_S
    ratelimit.park(method_key(portal, method), wait)
    error = errors.error_build(
        code="OPERATION_TIME_LIMIT",
        description=description,
        status=429,
        method=method,
        retry_after=wait,
    )
    assert isinstance(error, RateLimitedError)
    return error


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
