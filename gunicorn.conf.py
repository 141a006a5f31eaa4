"""gunicorn settings for the `web` process (Procfile, deploy/systemd, Dockerfile).

Every value comes from the environment (each variable is listed in .env.example); options on the
command line still win, which is how `make run` binds 127.0.0.1:8000 (bin/procfile-dev).

Logs: gunicorn's own lines and the access log go to stdout as JSON through the app's formatter
(integration/core/log.py), so every line of every process parses the same way. The access log carries
method, path, status, duration and the request id the app answers with (X-Request-ID), never the
query string, and the secret in a Unitalk webhook URL is replaced: that path segment is the
credential Unitalk posts with (integration/unitalk/webhooks.py), and a log is not a place for it.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from collections.abc import Mapping
from typing import Any


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


bind = [f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"]
# Processes x threads = requests served at once; docs/operations.md, "Scaling", has the
# arithmetic. Views are doors (store, enqueue, answer), so a few threads per process are
# enough, and two processes per core: a door's work is mostly Python (parse, check, three
# INSERTs), so the threads of one process queue on its interpreter. Five clicks at once on two
# cores: door p95 49 ms with 4 x 2 against 76 ms with 2 x 4, the same 8 requests at once
# (bench/latency.py). At most 8 unless set: each process holds its own memory and database
# connections.
workers = _int("WEB_CONCURRENCY", min(2 * _cores(), 8))
threads = _int("WEB_THREADS", 2)
worker_class = "gthread"
# A worker silent this long is killed and replaced (no request waits on Unitalk or Bitrix24).
timeout = _int("WEB_TIMEOUT", 30)
# On SIGTERM: stop accepting, finish what is in flight for up to this long, then exit.
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _int("WEB_KEEPALIVE", 5)
# Recycle a worker after this many requests (0: never); jitter keeps them from all going at once.
max_requests = _int("WEB_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
# Heartbeat files: /dev/shm in containers, so a read-only root filesystem is fine.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None

accesslog = "-"
errorlog = "-"
loglevel = (os.environ.get("LOG_LEVEL") or "INFO").lower()
access_log_format = "%(m)s %(U)s %(s)s"

_WEBHOOK_SECRET = re.compile(r"(/unitalk/webhook/)[^/?#\s\"]+")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """The path with the webhook secret replaced."""
    return _WEBHOOK_SECRET.sub(rf"\g<1>{REDACTED}", text)


class AccessLogFields(logging.Filter):
    """Fields for gunicorn's records: access atoms become JSON fields, secrets leave the text."""

    ATOMS = {
        "m": "method",
        "U": "path",
        "s": "status",
        "M": "duration_ms",
        "B": "bytes",
        "h": "remote_addr",
        "a": "user_agent",
        "{x-request-id}o": "request_id",
    }
    NUMERIC = frozenset({"status", "duration_ms", "bytes"})

    def filter(self, record: logging.LogRecord) -> bool:
        atoms: Any = record.args
        if isinstance(atoms, Mapping):
            for atom, field in self.ATOMS.items():
                value = atoms[atom]
                if value in ("-", None):
                    continue
                if field in self.NUMERIC and str(value).isdigit():
                    value = int(value)
                setattr(record, field, redact(value) if isinstance(value, str) else value)
        record.msg, record.args = redact(record.getMessage()), None
        return True


_level = loglevel.upper()
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"fields": {"()": AccessLogFields}},
    "formatters": {"json": {"()": "integration.core.log.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["fields"],
        }
    },
    "root": {"handlers": ["stdout"], "level": _level},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": _level, "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def post_worker_init(worker: Any) -> None:
    """The loaded app (Django and its modules, about 100,000 objects) goes out of the garbage
    collector's reach: a full collection walked all of it, tens of milliseconds with every
    thread of the worker stopped, in the middle of requests (docs/pipeline.md, "Pauses")."""
    gc.freeze()
