"""The door for Unitalk webhooks: /unitalk/webhook/<secret>/.

Unitalk does not sign webhooks (docs/unitalk.md §4.2), so the unguessable per-portal secret
in the URL is the authentication, optionally doubled by a custom header configured in the
cabinet. The door checks, validates, stores the raw event and enqueues its processing, then
answers 200 at once; everything else happens in a worker. Repeated deliveries answer 200 too
(so Unitalk stops retrying) but are stored and processed once.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt

from integration.unitalk import schema, selectors, services

logger = logging.getLogger(__name__)


def _not_found() -> HttpResponse:
    # Same answer for every unknown secret: nothing tells a prober how close it came.
    return HttpResponse("Not Found", status=404, content_type="text/plain")


def _bad(message: str, field: str) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=400)


def _too_large() -> JsonResponse:
    return JsonResponse({"error": "body too large", "field": "body"}, status=413)


def _read_body(request: HttpRequest, cap: int) -> bytes | None:
    """The body, or None when it is over `cap` bytes (declared or actual)."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > cap:
        return None
    body = request.read(cap + 1)
    return None if len(body) > cap else body


def _decode(request: HttpRequest, body: bytes) -> object:
    kind = (request.content_type or "").lower()
    if kind == "application/x-www-form-urlencoded":
        form = QueryDict(body, encoding="utf-8")
        return schema.form_to_payload({k: form.get(k, "") for k in form})
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise schema.PayloadError("body is not valid JSON", field="body") from None


def _multipart(request: HttpRequest, cap: int) -> object | None:
    """A multipart form body (size judged by its declared length), or None when over `cap`."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if not declared.isdigit() or int(declared) > cap:
        return None
    return schema.form_to_payload({k: request.POST.get(k, "") for k in request.POST})


@csrf_exempt
def unitalk_webhook(request: HttpRequest, secret: str) -> HttpResponse:
    target = selectors.webhook_target_for_secret(secret)
    if target is None:
        return _not_found()
    header = request.headers.get(settings.UNITALK_WEBHOOK_SECRET_HEADER)
    if header is not None or target.header_required:
        header_ok = hmac.compare_digest(selectors.secret_digest(header or ""), target.secret_digest)
        if not header_ok:
            return _not_found()
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
