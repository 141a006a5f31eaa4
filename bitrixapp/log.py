"""Structured logging: JSON lines with context fields, secrets masked.

Code attaches context once with `log_context(portal=..., call=...)`; every record logged inside
the block carries those fields, in web requests and Celery tasks alike.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("portal", "call", "job", "attempt", "request_id")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

# Names whose values are secrets wherever they appear: key=value, "key": "value", key: value.
_SECRET_NAMES = (
    r"access_token|refresh_token|application_token|client_secret|api_key|apikey|auth_id|"
    r"refresh_id|authorization|password|secret|token|auth|key"
)
_SECRET_PAIR = re.compile(
    rf"(?P<name>[\w\[\]-]*(?:{_SECRET_NAMES})[\w\]]*)(?P<sep>[\"']?\s*[:=]\s*[\"']?(?:Bearer\s+)?)"
    r"(?P<value>[A-Za-z0-9._~+/=-]{6,})",
    re.IGNORECASE,
)
# Bare long tokens (Bitrix24 tokens are 70+ hex chars, Fernet blobs are long base64).
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_-]{32,}\b")


def mask(value: str | None) -> str:
    """Show only the last 4 characters of a secret."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 4 else "****"


def mask_secrets(text: str) -> str:
    """Mask everything in free text that looks like a token or key."""
    text = _SECRET_PAIR.sub(lambda m: m["name"] + m["sep"] + mask(m["value"]), text)
    return _LONG_TOKEN.sub(lambda m: mask(m.group(0)), text)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach context fields (portal, call, job, attempt, request_id) to logs in this block."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the active log context onto each record (explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name in _RESERVED or name.startswith("_"):
                continue
            payload[name] = mask_secrets(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def settings_source_log(*, role: str) -> None:
    """One line at start-up: where this process's settings came from (docs/operations.md).

    `role` is web, worker or beat (`process` is taken: LogRecord's pid).
    """
    from django.conf import settings

    logging.getLogger("bitrixapp.settings").info(
        "%s: settings from %s",
        role,
        settings.SETTINGS_SOURCE,
        extra={"role": role, "settings_source": settings.SETTINGS_SOURCE, "debug": settings.DEBUG},
    )
