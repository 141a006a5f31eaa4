"""Structured logging: JSON lines with context fields, secrets masked.

Code attaches context once with `log_context(portal=..., call=...)`; every record logged inside
the block carries those fields, in web requests and Celery tasks alike.

Secrets are masked by knowing them, not only by their look (docs/security.md):
- by value: every secret the process handles is noted with `secret_note` (decrypted or saved
  tokens and keys pass through `integration.core.crypto`, the doors note what requests carry, the
  settings' own secrets are noted on first use), and any log text containing one is masked;
- by position: the webhook secret in `/unitalk/webhook/<secret>/`, and values after a secret's
  field name (`auth[access_token]=…`, `"api_key": "…"`, `AUTH_ID=…`);
- by field: a log field whose name says it holds a secret (`token`, `api_key`, ...) is masked
  whole.
Nothing is masked by its look: request ids, portal member ids, Celery task ids and job keys are
long hex strings too, and a log line must be matchable to the request, portal or task it is
about (docs/operations.md, "Logs").
The gunicorn access and error logs go through this formatter too (gunicorn.conf.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

CONTEXT_FIELDS = ("portal", "call", "job", "attempt", "request_id")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

# Names that hold a secret: a name ending in one of these (`auth[access_token]`, `X-Unitalk-Secret`,
# `AUTH_ID`). A bare `key` or `id` is not among them: `idempotency_key`, `pause_key`, `member_id`
# and `request_id` are ids an operator needs in full.
_SECRET_NAMES = (
    r"access_token|refresh_token|application_token|client_secret|webhook_secret|secret_key|"
    r"encryption_key|private_key|api_key|apikey|auth_id|refresh_id|authorization|password|"
    r"passwd|secret|token|auth"
)
# In text: name=value, "name": "value", name: value.
_SECRET_PAIR = re.compile(
    rf"(?P<name>[\w\[\]-]*?(?:{_SECRET_NAMES})\]?)(?P<sep>[\"']?\s*[:=]\s*[\"']?(?:Bearer\s+)?)"
    r"(?P<value>[A-Za-z0-9._~+/=-]{6,})",
    re.IGNORECASE,
)
# As a log field (`extra={"token": ...}`): the whole value is masked.
_SECRET_FIELD = re.compile(rf"^(?:.*[_-])?(?:{_SECRET_NAMES})$", re.IGNORECASE)
# The webhook door's URL carries its secret (integration/unitalk/urls.py).
_WEBHOOK_PATH = re.compile(r"(/unitalk/webhook/)([^/?#\s\"'<>]+)")
# Known secrets are remembered, and looked for, as their runs of these characters: the same
# split on both sides finds a secret wherever it sits (path, query, JSON, free text).
_RUN = re.compile(r"[A-Za-z0-9_-]{8,}")
_KNOWN_MAX = 8192
_known: OrderedDict[str, None] = OrderedDict()
_known_lock = threading.Lock()
_settings_noted = False


def secret_note(value: object) -> None:
    """Remember a secret this process holds, so no log line shows it (bounded, most recent)."""
    if not isinstance(value, str) or len(value) < 8:
        return
    runs = _RUN.findall(value)
    if not runs:
        return
    with _known_lock:
        for run in runs:
            _known[run] = None
            _known.move_to_end(run)
        while len(_known) > _KNOWN_MAX:
            _known.popitem(last=False)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _note_settings() -> None:
    """The settings' own secrets (Django key, Bitrix24 client secret, Fernet keys, passwords)."""
    global _settings_noted
    if _settings_noted:
        return
    try:
        from django.conf import settings

        values = [
            settings.SECRET_KEY,
            getattr(settings, "BITRIX24_CLIENT_SECRET", ""),
            getattr(settings, "METRICS_TOKEN", ""),
            *getattr(settings, "FIELD_ENCRYPTION_KEYS", []),
            getattr(settings, "EMAIL_HOST_PASSWORD", ""),
            _url_password(getattr(settings, "REDIS_URL", "")),
            _url_password(getattr(settings, "CELERY_BROKER_URL", "")),
            *(db.get("PASSWORD", "") for db in settings.DATABASES.values()),
        ]
    except Exception:  # settings not configured yet (gunicorn master): try again later
        return
    _settings_noted = True
    for value in values:
        secret_note(value)


def mask(value: str | None) -> str:
    """Show only the last 4 characters of a secret."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 4 else "****"


def _mask_known(match: re.Match[str]) -> str:
    run = match.group(0)
    return mask(run) if run in _known else run


def mask_secrets(text: str) -> str:
    """Mask every known secret, the webhook path secret and values after a secret's name."""
    _note_settings()
    if _known:
        text = _RUN.sub(_mask_known, text)
    text = _WEBHOOK_PATH.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    return _SECRET_PAIR.sub(lambda m: m["name"] + m["sep"] + mask(m["value"]), text)


def is_secret_field(name: str) -> bool:
    """A log field or parameter name that says its value is a secret."""
    return bool(_SECRET_FIELD.match(name))


def mask_value(value: Any) -> Any:
    """A log field with secrets masked: strings masked, containers walked, requests reduced to
    method and path, anything else rendered as masked text (numbers and None kept)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {
            str(k): mask(v) if isinstance(v, str) and is_secret_field(str(k)) else mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(v) for v in value]
    method, path = getattr(value, "method", None), getattr(value, "path", None)
    if isinstance(method, str) and isinstance(path, str):  # django's HttpRequest (`request`)
        return mask_secrets(f"{method} {path}")
    return mask_secrets(str(value))


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
            if is_secret_field(name) and isinstance(value, str):
                payload[name] = mask(value)
            else:
                payload[name] = mask_value(value)
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


class Routine(logging.Filter):
    """Routine framework lines go to DEBUG: Celery's "Task … received" / "succeeded" for every
    task and beat's "Sending due task" every few seconds are half of all lines and mean nothing
    to an operator (docs/operations.md, "Logs"). Attached to those loggers in LOGGING; the line
    is kept only when the root level is DEBUG.
    """

    def __init__(self, prefixes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not str(record.msg).startswith(self.prefixes):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
