"""Liveness (`/healthz`) and readiness (`/readyz`), docs/operations.md "Health, readiness, metrics".

Liveness is cheap: the database and the broker answer. Readiness asks whether the app as a
whole does its work: also Redis (the shared rate limits), a live worker for every queue and a
live beat (their heartbeats, bitrixapp/heartbeats.py), and no queue whose oldest due job has
waited too long. Each part is named in the answer; a 503 lists the failing ones.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from kombu import Connection

from bitrixapp import heartbeats
from bitrixapp.celery import app as celery_app
from integration.backlog import jobs_backlog, known_queues

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


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"ok": True, "detail": "not configured: rate limits in files on this host"}
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
    )
    try:
        client.ping()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        client.close()
    return {"ok": True}


def _heartbeat(role: str, queue: str | None = None) -> dict[str, Any]:
    try:
        beat = heartbeats.heartbeat_read(role, queue=queue)
    except Exception as exc:  # the cache (Redis) is down: nobody can tell
        return {"ok": False, "error": f"heartbeat unreadable: {type(exc).__name__}: {exc}"}
    if beat is None:
        return {"ok": False, "error": "no heartbeat"}
    ok = beat["age_s"] <= settings.READY_HEARTBEAT_MAX_AGE_S
    out = {"ok": ok, "age_s": beat["age_s"], "host": beat.get("host"), "pid": beat.get("pid")}
    if not ok:
        out["error"] = f"last heartbeat {beat['age_s']:.0f}s ago"
    return out


def _check_workers() -> dict[str, Any]:
    queues = {queue: _heartbeat("worker", queue) for queue in known_queues()}
    return {"ok": all(q["ok"] for q in queues.values()), "queues": queues}


def _check_backlog() -> dict[str, Any]:
    now = timezone.now()
    queues: dict[str, Any] = {}
    for queue, lane in jobs_backlog(now=now).items():
        limit = settings.READY_BACKLOG_MAX_AGE_BY_QUEUE.get(queue, settings.READY_BACKLOG_MAX_AGE_S)
        age = round(lane.oldest_due_s(now), 3)
        queues[queue] = {"ok": age <= limit, "due": lane.due, "oldest_due_s": age, "max_s": limit}
    return {"ok": all(q["ok"] for q in queues.values()), "queues": queues}


def _safely(check: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = check()
    except Exception as exc:  # a check that breaks is a failing part, not a 500
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return result


_last_failed: list[str] = []
_last_failed_lock = threading.Lock()


def _log_transition(failed: list[str], checks: dict[str, Any]) -> None:
    """One line when the set of failing parts changes, not one per probe."""
    global _last_failed
    with _last_failed_lock:
        if failed == _last_failed:
            return
        _last_failed = failed
    if failed:
        errors = {name: checks[name] for name in failed}
        logger.warning("readiness failing", extra={"failed": failed, "checks": errors})
    else:
        logger.info("readiness ok again")


@require_http_methods(["GET", "HEAD"])
def readyz(request: HttpRequest) -> JsonResponse:
    database = _check_database()
    broker = _check_broker()
    checks: dict[str, Any] = {
        "database": {"ok": True} if database is None else {"ok": False, "error": database},
        "broker": {"ok": True} if broker is None else {"ok": False, "error": broker},
        "redis": _safely(_check_redis),
        "worker": _safely(_check_workers),
        "beat": _safely(lambda: _heartbeat("beat")),
        # Without the database there is no backlog to read; its failure is named already.
        "backlog": _safely(_check_backlog)
        if database is None
        else {"ok": False, "error": "no database"},
    }
    failed = [name for name, check in checks.items() if not check["ok"]]
    _log_transition(failed, checks)
    body: dict[str, Any] = {"status": "unavailable" if failed else "ok", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)
