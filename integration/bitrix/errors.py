"""Bitrix24's error answers and what we do about each (rendered into docs/errors.md).

Bitrix24 answers errors as `{"error": CODE, "error_description": TEXT}`; the same code can come
with different HTTP statuses depending on the cloud version (docs/bitrix24.md §3: DOC vs SRC
disagree for insufficient_scope, PORTAL_DELETED ...), so we branch on the CODE and use the status
only for codes we do not know. The OAuth server's codes (token refresh, docs/bitrix24.md §1.5)
carry an `oauth:` prefix in this table because some of them collide with REST codes.
"""

from __future__ import annotations

from typing import Any

from integration.core.errors import (
    AuthExpiredError,
    CredentialsInvalidError,
    ErrorRule,
    IntegrationError,
    PermanentError,
    PortalStateError,
    RateLimitedError,
    TransientError,
)

SERVICE = "bitrix"
PAUSE_KEY = "bitrix"

#: Pseudo-codes for answers without a Bitrix24 code of their own.
NOT_JSON = "not-json"
HTTP_4XX = "http:4xx"
HTTP_5XX = "http:5xx"
HTTP_3XX = "http:3xx"
# Telephony and legacy methods: a RestException without a code (docs/bitrix24.md §2.3).
EMPTY_CODE = ""

#: Codes that mean "the access token we sent is no longer good": refresh (single-flight), retry once.
AUTH_CODES = frozenset({"expired_token", "invalid_token"})
#: Codes that mean "this would be a duplicate": binding calls on re-install tolerate them.
ALREADY_EXISTS_MARKERS = ("already",)

ERROR_TABLE: list[ErrorRule] = [
    # --- token and authorisation (docs/bitrix24.md §3) ---
    ErrorRule(
        "expired_token",
        AuthExpiredError,
        "The access token expired. The token is refreshed once under the portal's row lock "
        "(single-flight across processes) and the call retried exactly once.",
        401,
    ),
    ErrorRule(
        "invalid_token",
        AuthExpiredError,
        "Token unknown or revoked (another process refreshed the pair). The stored pair is "
        "re-read; refreshed only if the stored token is the one that failed; retried once.",
        401,
    ),
    ErrorRule(
        "NO_AUTH_FOUND",
        CredentialsInvalidError,
        "Wrong authorization data: no usable token. Portal work paused under 'bitrix'; "
        "a re-install (or opening the app) stores a new pair and resumes it.",
        401,
    ),
    ErrorRule(
        "insufficient_scope",
        PermanentError,
        "The app card lacks a scope needed by this method (403 per DOC, 401 per SRC). "
        "Not retryable: fix the app's scopes.",
        403,
    ),
    ErrorRule(
        "user_access_error",
        CredentialsInvalidError,
        "The token's user has no access to the app (admin restricted it). Paused; admins told.",
        401,
    ),
    ErrorRule(
        "authorization_error",
        CredentialsInvalidError,
        "Unable to authorize user: the token's user is inactive. Paused; admins told.",
        401,
    ),
    ErrorRule(
        "APPLICATION_NOT_FOUND",
        PortalStateError,
        "Application deleted or deactivated on the portal. Paused until re-install.",
        401,
    ),
    ErrorRule(
        "CONNECTION_ERROR",
        TransientError,
        "The portal could not reach the authorization server. Retried with backoff.",
        401,
    ),
    ErrorRule(
        "ACCESS_DENIED",
        PermanentError,
        "Access denied: the user lacks rights for this method, or app context required. "
        "(The plan-level 'REST only on commercial plans' variant also lands here.)",
        403,
    ),
    ErrorRule(
        "WRONG_AUTH_TYPE",
        PermanentError,
        "The method needs an application OAuth token (not a webhook/session). A bug on our side.",
        403,
    ),
    ErrorRule(
        "INVALID_CREDENTIALS",
        PermanentError,
        "The token's user lacks permission for this operation.",
        403,
    ),
    ErrorRule(
        "METHOD_CONFIRM_WAITING",
        PortalStateError,
        "An admin must confirm the app's use of this method. Paused; admins told.",
        401,
    ),
    ErrorRule(
        "METHOD_CONFIRM_DENIED",
        PortalStateError,
        "An admin denied the app this method. Paused; admins told.",
        403,
    ),
    ErrorRule(
        "PORTAL_DELETED",
        PortalStateError,
        "The portal was deleted (status 500 per DOC, 403 per SRC, 410 in b24pysdk). "
        "All work for the portal is paused.",
        403,
    ),
    ErrorRule(
        "PAYMENT_REQUIRED",
        PortalStateError,
        "The portal's subscription for the app ended. Portal suspended, admins told.",
        402,
    ),
    # --- limits (docs/bitrix24.md §4) ---
    ErrorRule(
        "QUERY_LIMIT_EXCEEDED",
        RateLimitedError,
        "Leaky bucket overflow (per portal and source IP). Our shared limiter keeps a safety "
        "margin so this is rare; when it happens the job waits ~1/drain s per missing slot.",
        503,
    ),
    ErrorRule(
        "OPERATION_TIME_LIMIT",
        RateLimitedError,
        "This method used its operating-time budget (480 s / 10 min). Only this method is "
        "parked until operating_reset_at; other methods continue.",
        429,
    ),
    ErrorRule(
        "OVERLOAD_LIMIT",
        RateLimitedError,
        "REST blocked by Bitrix24 support for overload. Waits long (10 min) before retrying.",
        503,
    ),
    # --- request and method errors ---
    ErrorRule(
        "ERROR_METHOD_NOT_FOUND",
        PermanentError,
        "Method not found (typo, or its module/scope missing on the portal).",
        404,
    ),
    ErrorRule("INVALID_REQUEST", PermanentError, "Https required / malformed request.", 400),
    ErrorRule(
        "ERROR_BATCH_LENGTH_EXCEEDED",
        PermanentError,
        "More than 50 commands in one batch (per command). Our batch() splits, so a bug.",
        400,
    ),
    ErrorRule(
        "ERROR_BATCH_METHOD_NOT_ALLOWED",
        PermanentError,
        "Method not allowed inside batch (upload, nested batch).",
        405,
    ),
    ErrorRule(
        "INTERNAL_SERVER_ERROR",
        TransientError,
        "Portal-side failure. Retried with backoff.",
        500,
    ),
    ErrorRule(
        "ERROR_UNEXPECTED_ANSWER",
        TransientError,
        "Portal-side failure. Retried with backoff.",
        500,
    ),
    ErrorRule(
        "ERROR_CORE",
        PermanentError,
        "Method-level failure with a description (e.g. 'Handler already binded'; binding "
        "calls at install treat 'already' as success).",
        400,
    ),
    ErrorRule("ERROR_ARGUMENT", PermanentError, "Bad parameter; `argument` names it.", 400),
    ErrorRule("ERROR_NOT_FOUND", PermanentError, "Entity not found.", 400),
    ErrorRule(
        "NOT_FOUND",
        PermanentError,
        "Entity not found (newer methods; crm.*.get answers an empty code instead).",
        404,
    ),
    ErrorRule("WRONG_ENCODING", PermanentError, "Wrong request encoding.", 400),
    ErrorRule(
        "ERROR_WRONG_HANDLER_URL",
        PermanentError,
        "event.bind/placement.bind refused the handler URL (host without a dot, not public): "
        "APP_BASE_URL is wrong.",
        400,
    ),
    ErrorRule(
        "ERROR_PLACEMENT_NOT_FOUND",
        PermanentError,
        "Unknown placement code or missing scope (placement + crm/telephony).",
        400,
    ),
    ErrorRule(
        EMPTY_CODE,
        PermanentError,
        '`"error":""` from telephony, CRM and other legacy methods (DOC calls it ERROR_CORE); '
        "the description says what is wrong ('Call is not found ...', 'Line already exists', "
        "'Not found' and 'ID is not defined or invalid.' from crm.*.get).",
        400,
    ),
    # --- answers without a code ---
    ErrorRule(
        NOT_JSON,
        TransientError,
        "Non-JSON body (HTML error page from a proxy or while blocked, fast_bitrix24 #216): "
        "classified by HTTP status; 2xx/5xx retried, 4xx dead.",
        None,
    ),
    ErrorRule(
        HTTP_3XX,
        TransientError,
        "Redirect: a renamed portal answers 302. Followed once to an allowed host and the "
        "stored endpoint updated; a second redirect or a foreign host is an error.",
        302,
    ),
    ErrorRule(HTTP_4XX, PermanentError, "Unknown code with a 4xx status: not retried.", None),
    ErrorRule(HTTP_5XX, TransientError, "Unknown code with a 5xx status: retried.", None),
    # --- OAuth server, token refresh (docs/bitrix24.md §1.5) ---
    ErrorRule(
        "oauth:invalid_grant",
        CredentialsInvalidError,
        "Refresh token invalid, expired or already used. Portal suspended with the reason, "
        "admins told, work paused under 'bitrix' until a re-install stores a new pair.",
        400,
    ),
    ErrorRule(
        "oauth:invalid_client",
        CredentialsInvalidError,
        "Our client_id/secret rejected, or app not installed on the portal. Suspended.",
        400,
    ),
    ErrorRule(
        "oauth:WRONG_CLIENT",
        CredentialsInvalidError,
        "Bad client_id (sent with HTTP 200). Suspended.",
        200,
    ),
    ErrorRule(
        "oauth:invalid_request",
        PermanentError,
        "Malformed refresh request: a bug on our side.",
        400,
    ),
    ErrorRule(
        "oauth:invalid_scope",
        CredentialsInvalidError,
        "Scope beyond the app card. Suspended.",
        403,
    ),
    ErrorRule(
        "oauth:insufficient_scope",
        CredentialsInvalidError,
        "Scope beyond the app card. Suspended.",
        403,
    ),
    ErrorRule(
        "oauth:PAYMENT_REQUIRED",
        PortalStateError,
        "Trial/paid period over. Portal suspended, admins told, work paused.",
        401,
    ),
    ErrorRule(
        "oauth:NOT_INSTALLED",
        PortalStateError,
        "App removed from the portal. Portal suspended, work paused.",
        401,
    ),
    ErrorRule(
        "oauth:PORTAL_DELETED",
        PortalStateError,
        "Portal deleted. Portal suspended, work paused.",
        403,
    ),
    ErrorRule(
        "oauth:bad_verification_code",
        CredentialsInvalidError,
        "Bad authorization code (treated like invalid_grant).",
        400,
    ),
    ErrorRule(
        "oauth:http:5xx",
        TransientError,
        "OAuth server unavailable or non-JSON answer: retried with backoff, tokens untouched.",
        None,
    ),
]

_BY_CODE = {rule.code: rule for rule in ERROR_TABLE}

#: Seconds to wait after a 503 QUERY_LIMIT_EXCEEDED when nothing better is known.
QUERY_LIMIT_RETRY_S = 2.0
OVERLOAD_RETRY_S = 600.0


def rule_for(code: str) -> ErrorRule | None:
    return _BY_CODE.get(code)


def error_build(
    *,
    code: str | None,
    description: str,
    status: int | None,
    method: str,
    retry_after: float | None = None,
    prefix: str = "",
) -> IntegrationError:
    """Turn one Bitrix24 error answer into our error class (by code first, then by status)."""
    rule = _BY_CODE.get(prefix + code) if code is not None else None
    if rule is None:
        if status is not None and 400 <= status < 500:
            rule = _BY_CODE[HTTP_4XX]
        else:
            rule = _BY_CODE[prefix + HTTP_5XX if prefix else HTTP_5XX]
    label = code if code else ("(empty code)" if code == "" else "(no code)")
    message = f"bitrix {method}: {label}: {description or 'no description'}"[:1000]
    kwargs: dict[str, Any] = {
        "code": code if code is not None else rule.code,
        "status": status,
        "service": SERVICE,
        "extra": {"method": method, "description": description},
    }
    cls = rule.error_class
    if issubclass(cls, RateLimitedError):
        wait = retry_after
        if wait is None:
            wait = OVERLOAD_RETRY_S if code == "OVERLOAD_LIMIT" else QUERY_LIMIT_RETRY_S
        return cls(message, retry_after=wait, **kwargs)
    if issubclass(cls, CredentialsInvalidError | PortalStateError):
        return cls(message, pause_key=PAUSE_KEY, **kwargs)
    return cls(message, **kwargs)


def is_already_exists(error: dict[str, Any] | IntegrationError) -> bool:
    """Does this error say the thing we tried to create is already there?"""
    if isinstance(error, IntegrationError):
        text = f"{error.extra.get('description', '')} {error.message}"
    else:
        text = f"{error.get('error', '')} {error.get('error_description', '')}"
    return any(marker in text.lower() for marker in ALREADY_EXISTS_MARKERS)
