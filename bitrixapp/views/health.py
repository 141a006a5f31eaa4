"""Liveness of the parts a request depends on: the database and the Celery broker."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods
from kombu import Connection

from bitrixapp.celery import app as celery_app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 3


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not answering"
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker(url: str | None = None) -> str | None:
    # An explicit URL is checked with its own transport: the configured one (the embedded
    # broker's) would otherwise override its scheme.
    connection = Connection(url) if url else celery_app.connection_for_write()
    try:
        with connection as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
            # Opening a channel proves more than a TCP handshake (auth, vhost, folders).
            conn.default_channel  # noqa: B018
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# Load balancers probe with HEAD as often as with GET: same checks, same status, no body.
@require_http_methods(["GET", "HEAD"])
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = sorted(name for name, error in checks.items() if error)
    body: dict[str, object] = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: (err or "ok") for name, err in checks.items()},
    }
    if failed:
        body["failed"] = failed
        logger.error("health check failed", extra={"failed": failed})
    return JsonResponse(body, status=503 if failed else 200)
