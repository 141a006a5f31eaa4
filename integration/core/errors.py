"""Errors that know what should happen next.

Every failure talking to Unitalk or Bitrix24 is raised as one of these classes. The job runner
decides from the class alone: retry with backoff, wait as long as told, pause the portal's work
until a person fixes something, or dead-letter at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class IntegrationError(Exception):
    """Root of everything the integration raises on purpose."""

    #: The job may succeed if simply tried again later.
    retryable: bool = False
    #: Short label for pages and docs: what the runner does with it.
    handling: str = "dead-letter"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        service: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.service = service
        self.extra = extra or {}

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status:
            parts.append(f"http={self.status}")
        return " ".join(parts)


class TransientError(IntegrationError):
    """Timeouts, resets, 5xx, internal errors: retry with exponential backoff."""

    retryable = True
    handling = "retry with backoff"


class RateLimitedError(TransientError):
    """The provider (or our own limiter) said slow down: wait at least `retry_after` seconds."""

    handling = "wait as told, then retry"

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(0.0, retry_after)


class AuthExpiredError(IntegrationError):
    """The access token expired or was rotated away: refresh (or re-read) and retry once."""

    retryable = True
    handling = "refresh token, retry once"


class PausedError(IntegrationError):
    """Work cannot go on until a person acts (credentials invalid, portal suspended...).

    Jobs that hit it are paused, not failed, under `pause_key` for their portal; fixing the cause
    resumes them. `pause_key` names the cause: e.g. "bitrix" or "unitalk".
    """

    handling = "pause the portal's work, tell the admin"

    def __init__(self, message: str, *, pause_key: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.pause_key = pause_key


class CredentialsInvalidError(PausedError):
    """The credentials are wrong for good (refresh token revoked, API key invalid)."""

    handling = "pause, mark credentials invalid, tell the admin"


class PortalStateError(PausedError):
    """The portal cannot take work: suspended, unpaid, uninstalled."""

    handling = "pause the portal, tell the admin"


class PermanentError(IntegrationError):
    """The request is wrong and will stay wrong: dead-letter at once."""

    handling = "dead-letter"


class ValidationError(PermanentError):
    """Input we received or were about to send is invalid."""


@dataclass(frozen=True)
class ErrorRule:
    """One row of a provider's error table: the code it sends and what we do about it.

    Each client keeps its table as `ERROR_TABLE`; `manage.py errors_doc` renders docs/errors.md
    from those tables, so the documentation cannot drift from the code.
    """

    code: str
    error_class: type[IntegrationError]
    meaning: str
    http_status: int | None = None
