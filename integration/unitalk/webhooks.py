"""The door for Unitalk webhooks: /unitalk/webhook/<secret>/.

Unitalk does not sign webhooks (docs/unitalk.md §4.2), so the unguessable per-portal secret
in the URL is the authentication, optionally doubled by a custom header configured in the
cabinet. The door checks, validates, stores the raw event and enqueues its processing, then
answers 200 at once; everything else happens in a worker. Repeated deliveries answer 200 too
(so Unitalk stops retrying) but are stored and processed once.
"""

from __future__ import annotations

import hmac
import logging
import math
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt

from integration.core import inputs, ratelimit
from integration.core.errors import RateLimitedError
from integration.unitalk import schema, selectors, services

logger = logging.getLogger(__name__)


def _not_found() -> HttpResponse:
    # Same answer for every unknown secret: nothing tells a prober how close it came.
    return HttpResponse("Not Found", status=404, content_type="text/plain")


_limiter_warned_at = 0.0


def client_ip(request: HttpRequest) -> str:
    """The sender's address: REMOTE_ADDR, or the last hop of a header a trusted proxy sets."""
    header = settings.UNITALK_WEBHOOK_CLIENT_IP_HEADER
    if header:
        hops = [h.strip() for h in request.headers.get(header, "").split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return str(request.META.get("REMOTE_ADDR") or "unknown")[:64]


def _wrong_secret(request: HttpRequest) -> HttpResponse:
    """404 for a wrong secret, 429 once a client keeps sending them (docs/security.md).

    Only refusals reach the shared limiter (integration.core.ratelimit, one budget per client IP for
    every web process): a delivery with the right secret never touches it. If the limiter's
    store is down the refusal is answered unthrottled, never with an error.
    """
    global _limiter_warned_at
    try:
        ratelimit.reserve(
            f"unitalk-webhook-refusals:{client_ip(request)}",
            burst=settings.UNITALK_WEBHOOK_REFUSALS_BURST,
            per_second=settings.UNITALK_WEBHOOK_REFUSALS_PER_S,
            max_wait=0,
        )
    except RateLimitedError as exc:
        retry = max(1, math.ceil(exc.retry_after))
        return HttpResponse(
            "Too Many Requests",
            status=429,
            content_type="text/plain",
            headers={"Retry-After": str(retry)},
        )
    except Exception:  # the limiter's store (Redis, files) failed: refuse without throttling
        now = time.monotonic()
        if now - _limiter_warned_at > 60:
            _limiter_warned_at = now
            logger.warning("webhook refusal limiter unavailable", exc_info=True)
    return _not_found()


def _bad(message: str, field: str) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=400)


def _too_large() -> JsonResponse:
    return JsonResponse({"error": "body too large", "field": "body"}, status=413)


def _declared_length(request: HttpRequest) -> int | None:
    """The body size the client declared (None: it declared none). Raises PayloadError.

    Through the one integer parser (integration/core/inputs.py, docs/security.md "Numbers and
    JSON from outside"): `str.isdigit()` takes "²" and 5,000 digits, which `int()` refuses.
    """
    try:
        return inputs.parse_int_or_none(
            request.META.get("CONTENT_LENGTH"), field="Content-Length", maximum=inputs.INT64_MAX
        )
    except inputs.InputError as exc:
        raise schema.PayloadError(exc.message, field=exc.field) from None


def _read_body(request: HttpRequest, cap: int) -> bytes | None:
    """The body, or None when it is over `cap` bytes (declared or actual). Raises PayloadError."""
    declared = _declared_length(request)
    if declared is not None and declared > cap:
        return None
    body = request.read(cap + 1)
    return None if len(body) > cap else body


def _decode(request: HttpRequest, body: bytes) -> object:
    kind = (request.content_type or "").lower()
    if kind == "application/x-www-form-urlencoded":
        form = QueryDict(body, encoding="utf-8")
        return schema.form_to_payload({k: form.get(k, "") for k in form})
    try:
        return inputs.parse_json(body, field="body")
    except inputs.InputError as exc:
        raise schema.PayloadError(exc.message, field=exc.field) from None


def _multipart(request: HttpRequest, cap: int) -> object | None:
    """A multipart form body (size judged by its declared length), or None when over `cap`.
    Raises PayloadError (no length declared, or not a number)."""
    declared = _declared_length(request)
    if declared is None:
        raise schema.PayloadError("Content-Length is required", field="Content-Length")
    if declared > cap:
        return None
    return schema.form_to_payload({k: request.POST.get(k, "") for k in request.POST})


@csrf_exempt
def unitalk_webhook(request: HttpRequest, secret: str) -> HttpResponse:
    target = selectors.webhook_target_for_secret(secret)
    if target is None:
        return _wrong_secret(request)
    header = request.headers.get(settings.UNITALK_WEBHOOK_SECRET_HEADER)
    if header is not None or target.header_required:
        header_ok = hmac.compare_digest(selectors.secret_digest(header or ""), target.secret_digest)
        if not header_ok:
            return _wrong_secret(request)
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    cap = settings.UNITALK_WEBHOOK_MAX_BYTES
    try:
        if (request.content_type or "").lower() == "multipart/form-data":
            raw = _multipart(request, cap)
            if raw is None:
                return _too_large()
        else:
            body = _read_body(request, cap)
            if body is None:
                return _too_large()
            if not body.strip():
                return _bad("body is empty", "body")
            raw = _decode(request, body)
        parsed = schema.event_parse(raw)
    except schema.PayloadError as exc:
        logger.info("unitalk webhook refused: %s", exc.message, extra={"field": exc.field})
        return _bad(exc.message, exc.field)
    assert isinstance(raw, dict)  # event_parse accepted it
    created = services.event_receive(target=target, parsed=parsed, raw=raw)
    return JsonResponse({"status": "ok" if created else "duplicate"})
