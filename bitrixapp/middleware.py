"""Request-scoped log context and answer counts; the input guard."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from integration.core import inputs, metrics
from integration.core.log import log_context

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Tags every log line of a request with a request id, echoed in `X-Request-ID`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        # Answers by route (webhook deliveries by status among them); the route name, never the
        # path: the webhook's path carries its secret, and paths are unbounded.
        match = getattr(request, "resolver_match", None)
        route = (match.url_name or match.view_name) if match else "unmatched"
        metrics.door_answers.labels(route, str(response.status_code)).inc()
        return response


_NUL_FORM = (b"\x00", b"%00")
_NUL_JSON = (b"\x00", b"\\u0000")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class InputGuardMiddleware:
    """400 for a NUL character anywhere in the query string or body, and for a Content-Length
    that is not a number (docs/security.md).

    PostgreSQL cannot store NUL in text or jsonb: without this, a `%00` in a field or a
    `\u0000` in a JSON string would reach a query and come back as a 500. Checked on the raw
    bytes, before any parsing, so the doors keep reading their bodies as they like.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            return _nul_refused("query string")
        try:
            # Through the one integer parser: Django's `request.body` runs int() on it, which
            # raises on "²" and on 5,000 digits (docs/security.md "Numbers and JSON from outside").
            inputs.parse_int_or_none(
                request.META.get("CONTENT_LENGTH"), field="Content-Length", maximum=inputs.INT64_MAX
            )
        except inputs.InputError as exc:
            return JsonResponse({"error": exc.message, "field": exc.field}, status=400)
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                body = request.body
            except RequestDataTooBig:
                body = b""  # the door answers the size itself
            if body:
                kind = (request.content_type or "").lower()
                # Form bodies escape NUL as %00; anything else may be decoded as JSON (\u0000).
                needles = _NUL_FORM if kind in _FORM_TYPES else _NUL_JSON
                if any(n in body for n in needles):
                    return _nul_refused("body")
        return self.get_response(request)


def _nul_refused(field: str) -> HttpResponse:
    return JsonResponse({"error": f"{field} contains a NUL character", "field": field}, status=400)
