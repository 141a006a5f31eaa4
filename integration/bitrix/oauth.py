"""Bitrix24 OAuth: the one writer of a portal's tokens.

Refresh tokens are single-use and a refresh revokes the access token issued with them
(docs/bitrix24.md §1.5, §8: SDK users lose whole portals to refresh races). So a refresh happens
only under the portal's row lock (`select_for_update` inside `transaction.atomic`; on SQLite the
IMMEDIATE transaction serialises writers the same way), only if the stored token is still the one
that failed (or still stale), and the rotated pair is stored in the same transaction. Everyone
else re-reads the stored pair and retries with it.

The OAuth server URL comes from settings only, never from request data: a forged install must not
make us send `client_secret` anywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bitrixapp.models import Portal
from integration.bitrix import errors
from integration.core import alerts, http, inputs
from integration.core.errors import (
    CredentialsInvalidError,
    IntegrationError,
    PausedError,
    PortalStateError,
    TransientError,
)
from integration.core.log import mask

logger = logging.getLogger(__name__)

ALERT_KIND = "bitrix.auth"
ALERT_TAG = "bitrix:credentials"


def _oauth_base() -> str:
    return settings.BITRIX24_OAUTH_SERVER.rstrip("/")


def token_url() -> str:
    return f"{_oauth_base()}/oauth/token/"


def _expires_soon(portal: Portal) -> bool:
    if portal.access_expires_at is None:
        return False
    margin = timedelta(seconds=settings.BITRIX24_REFRESH_MARGIN_S)
    return portal.access_expires_at <= timezone.now() + margin


def _copy_tokens(target: Portal, source: Portal) -> None:
    for name in ("access_token", "refresh_token", "access_expires_at", "status", "status_reason"):
        setattr(target, name, getattr(source, name))


def tokens_store(
    *,
    portal: Portal,
    access_token: str,
    refresh_token: str,
    expires_in: int | float | None,
) -> None:
    """Store a new pair received from Bitrix24 (install, ONAPPINSTALL, refresh). Caller saves."""
    portal.access_token = access_token
    if refresh_token:
        portal.refresh_token = refresh_token
    seconds = float(expires_in) if expires_in else 3600.0
    portal.access_expires_at = timezone.now() + timedelta(seconds=seconds)


#: Longer than any token lifetime Bitrix24 hands out (an hour, docs/bitrix24.md "Refresh").
MAX_LIFETIME_S = 365 * 24 * 3600


def _lifetime(value: Any) -> int | None:
    """The refresh answer's `expires_in`, or None (tokens_store's hour) when it is no number.

    Through the one integer parser (docs/security.md "Numbers and JSON from outside"). Never
    raised on: refresh tokens are single-use (docs/bitrix24.md), so refusing the answer would
    lose the new pair.
    """
    try:
        return inputs.parse_int_or_none(value, field="expires_in", maximum=MAX_LIFETIME_S)
    except inputs.InputError:
        logger.info("token refresh answer has no usable expires_in; assuming an hour")
        return None


def access_token_current(*, portal: Portal) -> str:
    """The token to send now: refreshed first if it expires within the margin.

    Raises PortalStateError for portals that cannot work (suspended, uninstalled).
    """
    if portal.status in (Portal.Status.SUSPENDED, Portal.Status.UNINSTALLED):
        raise PortalStateError(
            f"portal {portal.domain} is {portal.status}: {portal.status_reason}",
            pause_key=errors.PAUSE_KEY,
            service=errors.SERVICE,
            code=f"portal:{portal.status}",
        )
    if not portal.access_token:
        raise CredentialsInvalidError(
            f"portal {portal.domain} has no access token",
            pause_key=errors.PAUSE_KEY,
            service=errors.SERVICE,
            code="NO_AUTH_FOUND",
        )
    if _expires_soon(portal):
        return token_refresh(portal=portal, failed_token=portal.access_token)
    return portal.access_token


def token_refresh(*, portal: Portal, failed_token: str) -> str:
    """Return a working access token after `failed_token` was refused (or is about to expire).

    Single-flight across threads and processes: under the row lock, if the stored token differs
    from `failed_token` another worker already refreshed and we use its pair; otherwise we refresh
    and store the rotated pair before the lock is released. Updates `portal` in place.

    Raises TransientError (OAuth server unreachable; tokens untouched), CredentialsInvalidError /
    PortalStateError with pause_key "bitrix" (refresh refused: portal suspended, admins notified).
    """
    failure: PausedError | None = None
    with transaction.atomic():
        row = Portal.objects.select_for_update().get(pk=portal.pk)
        if row.status in (Portal.Status.SUSPENDED, Portal.Status.UNINSTALLED):
            _copy_tokens(portal, row)
            raise PortalStateError(
                f"portal {row.domain} is {row.status}: {row.status_reason}",
                pause_key=errors.PAUSE_KEY,
                service=errors.SERVICE,
                code=f"portal:{row.status}",
            )
        if row.access_token and row.access_token != failed_token and not _expires_soon(row):
            _copy_tokens(portal, row)
            logger.info("token already refreshed by another worker; using the stored pair")
            return row.access_token
        if not row.refresh_token:
            failure = CredentialsInvalidError(
                "no refresh token stored: open the app in Bitrix24 or reinstall it",
                pause_key=errors.PAUSE_KEY,
                service=errors.SERVICE,
                code="oauth:invalid_grant",
            )
        else:
            try:
                body = _refresh_request(refresh_token=row.refresh_token)
            except PausedError as exc:
                failure = exc
            else:
                tokens_store(
                    portal=row,
                    access_token=str(body["access_token"]),
                    refresh_token=str(body.get("refresh_token") or ""),
                    expires_in=_lifetime(body.get("expires_in")),
                )
                row.save(update_fields=["access_token", "refresh_token", "access_expires_at"])
                _copy_tokens(portal, row)
                logger.info(
                    "access token refreshed",
                    extra={"portal": row.member_id, "token": mask(row.access_token)},
                )
                return row.access_token
        # Refused for good: mark the portal in the same transaction, tell people after it.
        row.status = Portal.Status.SUSPENDED
        row.status_reason = f"token refresh refused: {failure}"[:1000]
        row.status_changed_at = timezone.now()
        row.save(update_fields=["status", "status_reason", "status_changed_at"])
        _copy_tokens(portal, row)
    _admins_tell(portal=portal, code=failure.code or "", what="refused to renew the app's access")
    raise failure


def _admins_tell(*, portal: Portal, code: str, what: str) -> None:
    alerts.notification_raise(
        portal=portal,
        kind=ALERT_KIND,
        tag=ALERT_TAG,
        message=(
            f"Bitrix24 {what} ({code}): reinstall or re-open the app as an administrator. "
            "Calls are not logged to the CRM until then."
        ),
        context={"code": code},
    )


def portal_suspend(*, portal: Portal, error: PausedError) -> None:
    """A REST answer says the portal cannot work for us (app removed, access restricted ...).

    The portal is suspended with the reason and its admins are told; the caller raises `error`,
    so the job pauses under "bitrix" and a re-install resumes it.
    """
    now = timezone.now()
    changed = Portal.objects.filter(
        pk=portal.pk, status__in=[Portal.Status.ACTIVE, Portal.Status.INSTALLING]
    ).update(
        status=Portal.Status.SUSPENDED,
        status_reason=f"Bitrix24 refused the app: {error}"[:1000],
        status_changed_at=now,
        updated_at=now,
    )
    if changed:
        portal.status = Portal.Status.SUSPENDED
        _admins_tell(portal=portal, code=error.code or "", what="refused the app")


def _refresh_request(*, refresh_token: str) -> dict[str, Any]:
    """GET /oauth/token/ (docs/bitrix24.md §1.5: docs and both SDKs use GET with a query string)."""
    response = http.request(
        "GET",
        token_url(),
        service="bitrix-oauth",
        params={
            "grant_type": "refresh_token",
            "client_id": settings.BITRIX24_CLIENT_ID,
            "client_secret": settings.BITRIX24_CLIENT_SECRET,
            "refresh_token": refresh_token,
        },
    )
    body = _json_or_none(response)
    if isinstance(body, dict) and body.get("access_token") and not body.get("error"):
        return body
    code = str(body.get("error")) if isinstance(body, dict) and body.get("error") else None
    description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if code is None:
        raise TransientError(
            f"bitrix oauth: unexpected answer (http {response.status_code})",
            status=response.status_code,
            service="bitrix-oauth",
            code="oauth:http:5xx",
        )
    error = errors.error_build(
        code=code,
        description=description,
        status=response.status_code,
        method="oauth/token",
        prefix="oauth:",
    )
    if isinstance(error, IntegrationError) and not isinstance(error, PausedError):
        if error.retryable:
            raise error
        # A refusal we do not know by name: treat as credentials gone, never loop on it.
        raise CredentialsInvalidError(
            error.message, pause_key=errors.PAUSE_KEY, code=code, status=response.status_code
        )
    raise error


@dataclass(frozen=True)
class TokenInfo:
    """What the OAuth server says about an access token (app.info)."""

    member_id: str
    client_id: str
    domain: str
    client_endpoint: str
    scope: str
    installed: bool


def token_inspect(*, access_token: str) -> TokenInfo:
    """Ask the OAuth server (from settings) who this token belongs to: the install handshake.

    Raises CredentialsInvalidError when the token is not genuine, TransientError when the server
    cannot be reached.
    """
    response = http.request(
        "GET",
        f"{_oauth_base()}/rest/app.info",
        service="bitrix-oauth",
        params={"auth": access_token},
    )
    body = _json_or_none(response)
    if not isinstance(body, dict) or "result" not in body:
        if isinstance(body, dict) and body.get("error"):
            raise CredentialsInvalidError(
                f"token rejected by the OAuth server: {body.get('error')}",
                pause_key=errors.PAUSE_KEY,
                code=str(body.get("error")),
                status=response.status_code,
                service="bitrix-oauth",
            )
        raise TransientError(
            f"bitrix oauth app.info: unexpected answer (http {response.status_code})",
            status=response.status_code,
            service="bitrix-oauth",
        )
    result: dict[str, Any] = body["result"] if isinstance(body["result"], dict) else {}
    install: dict[str, Any] = result["install"] if isinstance(result.get("install"), dict) else {}
    return TokenInfo(
        member_id=str(install.get("member_id") or result.get("member_id") or ""),
        client_id=str(result.get("client_id") or result.get("CODE") or ""),
        domain=str(install.get("domain") or ""),
        client_endpoint=str(install.get("client_endpoint") or ""),
        scope=str(install.get("scope") or result.get("scope") or ""),
        installed=bool(install.get("installed", result.get("INSTALLED", False))),
    )


def portal_endpoint_move(*, portal: Portal, client_endpoint: str, domain: str) -> None:
    """The portal was renamed (302 from its old domain): remember where it lives now."""
    Portal.objects.filter(pk=portal.pk).update(
        client_endpoint=client_endpoint, domain=domain, updated_at=timezone.now()
    )
    portal.client_endpoint, portal.domain = client_endpoint, domain
    logger.warning("portal moved to a new domain", extra={"domain": domain})


def _json_or_none(response: http.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
