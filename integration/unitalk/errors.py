"""Unitalk's error answers and what we do about each (rendered into docs/errors.md).

Unitalk reports errors two ways (docs/unitalk.md §2.4): usually HTTP 200 with
`{"status": "Error", "message": ...}`, and possibly an HTTP error status (not documented; seen
behind proxies and in the simulator's robustness switch). Both go through `classify`.
"""

from __future__ import annotations

from integration.core.errors import (
    CredentialsInvalidError,
    ErrorRule,
    IntegrationError,
    PermanentError,
    RateLimitedError,
    TransientError,
    ValidationError,
)
from integration.unitalk import names

SERVICE = "unitalk"

#: Pseudo-codes for answers that carry no message of Unitalk's own.
HTTP_401 = "http:401"
HTTP_403 = "http:403"
HTTP_404 = "http:404"
HTTP_429 = "http:429"
HTTP_4XX = "http:4xx"
HTTP_5XX = "http:5xx"
HTTP_3XX = "http:3xx"
NOT_JSON = "not-json"
UNEXPECTED_SHAPE = "unexpected-shape"
RECORDING_GONE = "recording:gone"
RECORDING_REFUSED = "recording:refused"
RECORDING_NOT_AUDIO = "recording:not-audio"
RECORDING_TOO_LARGE = "recording:too-large"
RATE_LIMITED = "rate-limited"
ERROR_OTHER = "error:other"

ERROR_TABLE: list[ErrorRule] = [
    ErrorRule(
        names.MSG_AUTH_INVALID,
        CredentialsInvalidError,
        "API key missing or wrong (HTTP 200 envelope). The key is re-read from the database and "
        "the request retried once; still refused → connection marked credentials_invalid, the "
        "portal's Unitalk jobs paused under 'unitalk', admins notified. Saving a new key resumes.",
        200,
    ),
    ErrorRule(
        HTTP_401,
        CredentialsInvalidError,
        "Unauthorized as an HTTP status: handled exactly like 'Authorization invalid'.",
        401,
    ),
    ErrorRule(
        HTTP_403,
        CredentialsInvalidError,
        "Forbidden as an HTTP status: handled exactly like 'Authorization invalid'.",
        403,
    ),
    ErrorRule(
        names.MSG_INTERNAL,
        TransientError,
        "Unitalk server fault ('report to support'): retried with backoff.",
        200,
    ),
    ErrorRule(
        RATE_LIMITED,
        RateLimitedError,
        "Overload / DOS-protection answer (message containing one of "
        f"{', '.join(repr(p) for p in names.RATE_LIMIT_PHRASES)}; wording UNCONFIRMED): the key "
        "is parked for UNITALK_OVERLOAD_BACKOFF_S and the job waits that long.",
        200,
    ),
    ErrorRule(
        HTTP_429,
        RateLimitedError,
        "Too Many Requests as an HTTP status: wait Retry-After (default "
        "UNITALK_OVERLOAD_BACKOFF_S), key parked meanwhile.",
        429,
    ),
    ErrorRule(
        HTTP_5XX, TransientError, "Server error or gateway failure: retried with backoff.", 500
    ),
    ErrorRule(
        NOT_JSON,
        TransientError,
        "HTTP 200 whose body is not JSON (proxy or maintenance page): retried with backoff.",
        200,
    ),
    ErrorRule(
        UNEXPECTED_SHAPE,
        TransientError,
        "JSON of a shape we do not know for that method (e.g. history/get without `calls`): "
        "retried with backoff, and the message names the method so a changed API is noticed.",
        200,
    ),
    ErrorRule(
        HTTP_3XX,
        PermanentError,
        "Redirect: UNITALK_API_URL points at the wrong place; dead-lettered so someone fixes it.",
        302,
    ),
    ErrorRule(
        HTTP_404,
        PermanentError,
        "Unknown API path (method renamed or wrong base URL): dead-lettered.",
        404,
    ),
    ErrorRule(HTTP_4XX, PermanentError, "Other client error status: dead-lettered.", 400),
    *[
        ErrorRule(
            message,
            ValidationError,
            "history/get rejected the query (2017 ancestor's wording, UNCONFIRMED today): "
            "dead-lettered, it is a bug on our side.",
            200,
        )
        for message in names.HISTORY_VALIDATION_MESSAGES
    ],
    ErrorRule(
        names.MSG_INNER_LINE_NOT_FOUND,
        ValidationError,
        "directCall with an inner line Unitalk does not know (wording UNCONFIRMED): "
        "dead-lettered; the operator mapping needs fixing.",
        200,
    ),
    ErrorRule(
        RECORDING_GONE,
        PermanentError,
        "Recording link answered 404/410: expired or no recording (only ANSWER calls have one).",
        404,
    ),
    ErrorRule(
        RECORDING_REFUSED,
        PermanentError,
        "Recording link refused both without and with the API key (or is not on a Unitalk "
        "host, so the key is never sent there).",
        403,
    ),
    ErrorRule(
        RECORDING_NOT_AUDIO,
        PermanentError,
        "Recording link answered with a non-audio content type (an HTML or JSON error page).",
        200,
    ),
    ErrorRule(
        RECORDING_TOO_LARGE,
        PermanentError,
        "Recording larger than UNITALK_RECORDING_MAX_BYTES: not downloaded.",
        200,
    ),
    ErrorRule(
        ERROR_OTHER,
        PermanentError,
        "Any other {'status':'Error'} message: the request is wrong; dead-lettered with the "
        "message (and `data`, when sent) kept on the job.",
        200,
    ),
]

_BY_CODE = {rule.code: rule for rule in ERROR_TABLE}


def rule_for(code: str) -> ErrorRule:
    return _BY_CODE[code]


def code_for_message(message: str) -> str:
    """The ERROR_TABLE code for a Unitalk error `message`."""
    if message in _BY_CODE:
        return message
    lowered = message.lower()
    if any(phrase in lowered for phrase in names.RATE_LIMIT_PHRASES):
        return RATE_LIMITED
    return ERROR_OTHER


def code_for_status(status: int) -> str | None:
    """The ERROR_TABLE code for an HTTP status that is an error by itself, else None."""
    if status in (401, 403, 404, 429):
        return f"http:{status}"
    if 300 <= status < 400:
        return HTTP_3XX
    if status >= 500:
        return HTTP_5XX
    if status >= 400:
        return HTTP_4XX
    return None


def build(
    code: str,
    message: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    extra: dict | None = None,
) -> IntegrationError:
    """An instance of the class the table gives for `code` (pause key 'unitalk' for pauses)."""
    cls = rule_for(code).error_class
    kwargs: dict = {"code": code, "status": status, "service": SERVICE, "extra": extra}
    if issubclass(cls, RateLimitedError):
        return cls(message, retry_after=retry_after or 0.0, **kwargs)
    if issubclass(cls, CredentialsInvalidError):
        return cls(message, pause_key=PAUSE_KEY, **kwargs)
    return cls(message, **kwargs)


#: Jobs blocked by Unitalk credentials pause under this key; saving a new key resumes them.
PAUSE_KEY = "unitalk"
