"""`/metrics`: Prometheus text exposition, for scrapers only (docs/operations.md, "Metrics").

Off (404) unless METRICS_TOKEN or METRICS_ALLOW_IPS is set. A client from an allowed network
needs no token; anyone else must send `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise).
The client address is the socket's (REMOTE_ADDR): behind a proxy, allow the proxy's address
only if the proxy itself restricts /metrics, or use the token.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from integration.core.metrics import exposition
from integration.metrics_rows import RowsCollector


def _allowed_ip(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.METRICS_ALLOW_IPS:
        try:
            if client in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue  # a malformed entry allows nobody
    return False


def _token_ok(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given, token)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN and not settings.METRICS_ALLOW_IPS:
        raise Http404("metrics are off")
    if not (_allowed_ip(request.META.get("REMOTE_ADDR", "")) or _token_ok(request)):
        response = HttpResponse(
            "a bearer token is required\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(RowsCollector()), content_type=CONTENT_TYPE_LATEST)
