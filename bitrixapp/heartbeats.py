"""Heartbeats: workers and beat say "alive" every few seconds, readiness reads the age.

Stored in Django's cache (Redis in production, shared by every host; a file cache on one host
without REDIS_URL), one key per role and queue: a worker beats for each queue it consumes, so
readiness can tell a lane with no live worker (docs/operations.md, "Readiness"). Keys are
namespaced by the default queue name, which keeps test stacks that share a Redis apart.

- worker: a daemon thread in the worker's main process, started on `worker_ready`;
- beat: the scheduler itself, on every tick (`HeartbeatScheduler`): a beat whose loop is stuck
  stops beating even if its process lives.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery.beat import PersistentScheduler
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _key(role: str, queue: str | None = None) -> str:
    base = f"heartbeat:{settings.CELERY_TASK_DEFAULT_QUEUE}:{role}"
    return f"{base}:{queue}" if queue else base


def _ttl() -> int:
    # Long enough to read a stale heartbeat's age, short enough that a dead host disappears.
    return int(max(60.0, settings.READY_HEARTBEAT_MAX_AGE_S * 20))


def heartbeat_write(role: str, *, queue: str | None = None, **info: Any) -> None:
    """Record that `role` (worker, beat) is alive now. Raises the cache's errors."""
    value = {"at": time.time(), "host": socket.gethostname(), "pid": os.getpid(), **info}
    cache.set(_key(role, queue), value, timeout=_ttl())


def heartbeat_read(role: str, *, queue: str | None = None) -> dict[str, Any] | None:
    """The last heartbeat of `role` with its `age_s`, or None when there is none."""
    value = cache.get(_key(role, queue))
    if not isinstance(value, dict):
        return None
    return {**value, "age_s": round(time.time() - float(value.get("at", 0)), 3)}


def heartbeat_forget(role: str, *, queue: str | None = None) -> None:
    cache.delete(_key(role, queue))


class _Beating:
    """Writes, and says once (not every few seconds) when it cannot write and when it can again."""

    def __init__(self) -> None:
        self.failing = False

    def write(self, role: str, **kwargs: Any) -> None:
        try:
            heartbeat_write(role, **kwargs)
        except Exception as exc:  # a cache outage must not stop the worker or beat
            if not self.failing:
                logger.warning("heartbeat not written: %s", exc, extra={"role": role})
            self.failing = True
        else:
            if self.failing:
                logger.info("heartbeat written again", extra={"role": role})
            self.failing = False


class _WorkerHeartbeat(threading.Thread):
    def __init__(self, hostname: str, queues: list[str]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.hostname, self.queues = hostname, queues
        self.stopped = threading.Event()
        self.beating = _Beating()

    def run(self) -> None:
        while not self.stopped.is_set():
            for queue in self.queues:
                self.beating.write("worker", queue=queue, worker=self.hostname)
            self.stopped.wait(settings.HEARTBEAT_INTERVAL_S)


_worker_thread: _WorkerHeartbeat | None = None


@worker_ready.connect
def _worker_heartbeat_start(sender: Any = None, **_: Any) -> None:
    global _worker_thread
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    _worker_thread = _WorkerHeartbeat(getattr(sender, "hostname", "") or "", queues)
    _worker_thread.start()


@worker_shutdown.connect
def _worker_heartbeat_stop(**_: Any) -> None:
    if _worker_thread is not None:
        _worker_thread.stopped.set()


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, beating on every tick (CELERY_BEAT_SCHEDULER)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._beating = _Beating()
        self._last = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._last >= settings.HEARTBEAT_INTERVAL_S:
            self._beating.write("beat")
            self._last = now
        # Never sleep past the next heartbeat, whatever the schedule.
        return float(min(super().tick(*args, **kwargs), settings.HEARTBEAT_INTERVAL_S))
