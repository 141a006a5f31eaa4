"""Who is calling: Bitrix24 events (application_token), iframe entries (AUTH_ID), page requests.

- Events: `event_authenticate(auth)` compares `auth[application_token]` in constant time with the
  value stored for `auth[member_id]` (docs/bitrix24.md §1.4; the only proof ONAPPUNINSTALL carries).
- Iframe entry POSTs (main page, placements): `frame_entry` validates AUTH_ID on the portal's own
  REST (the stored client_endpoint, never the DOMAIN in the request) with `app.info` + `profile`,
  caches a positive answer briefly, and issues a page token.
- Later requests from the page: `page_token_required` checks the signed, short-lived token sent
  as `X-App-Token` (no third-party cookies needed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bitrixapp import security
from bitrixapp.models import Portal
from integration.bitrix import client
from integration.errors import IntegrationError

logger = logging.getLogger(__name__)

PAGE_TOKEN_SALT = "bitrixapp.page-token"
PAGE_TOKEN_HEADER = "X-App-Token"


class AuthenticationFailed(Exception):
    """The request does not prove it comes from the portal it names. `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_authenticate(*, auth: dict[str, Any]) -> Portal:
    """The Portal an event's `auth` block proves to be from. Raises AuthenticationFailed."""
    member_id = str(auth.get("member_id") or "")
    token = str(auth.get("application_token") or "")
    if not member_id or not token:
        raise AuthenticationFailed("auth[member_id] and auth[application_token] are required")
    portal = Portal.objects.filter(member_id=member_id).first()
    stored = portal.application_token if portal else ""
    # Compare even for unknown portals, so timing does not tell which member_ids exist.
    matches = hmac.compare_digest((stored or "\0").encode(), token.encode())
    if portal is None or not stored or not matches:
        raise AuthenticationFailed("unknown portal or wrong application token")
    return portal


@dataclass(frozen=True)
class PageIdentity:
    portal_id: int
    member_id: str
    user_id: int
    is_admin: bool

    @property
    def portal(self) -> Portal:
        return Portal.objects.get(pk=self.portal_id)


def page_token_issue(portal: Portal, user_id: int, is_admin: bool) -> str:
    """A signed token binding a page to (portal, user); valid BITRIX24_PAGE_TOKEN_MAX_AGE_S."""
    return signing.dumps(
        {"p": portal.pk, "m": portal.member_id, "u": int(user_id), "a": bool(is_admin)},
        salt=PAGE_TOKEN_SALT,
        compress=True,
    )


def page_token_verify(token: str) -> PageIdentity:
    """Check a page token. Raises AuthenticationFailed (bad, expired, portal gone)."""
    try:
        data = signing.loads(
            token, salt=PAGE_TOKEN_SALT, max_age=settings.BITRIX24_PAGE_TOKEN_MAX_AGE_S
        )
    except signing.SignatureExpired as exc:
        raise AuthenticationFailed("page token expired: reload the app") from exc
    except signing.BadSignature as exc:
        raise AuthenticationFailed("bad page token") from exc
    portal = Portal.objects.filter(pk=data["p"], member_id=data["m"]).first()
    if portal is None or portal.status == Portal.Status.UNINSTALLED:
        raise AuthenticationFailed("the portal is not installed")
    return PageIdentity(
        portal_id=portal.pk, member_id=portal.member_id, user_id=data["u"], is_admin=data["a"]
    )


def frame_user_verify(*, portal: Portal, auth_id: str) -> tuple[int, bool]:
    """(user_id, is_admin) of the user whose AUTH_ID this is, checked on the portal's REST.

    One `batch` request with app.info (the token is for our app) and profile (who it is). A
    positive answer is cached for BITRIX24_AUTH_CHECK_CACHE_S under a hash of the token.
    """
    if not auth_id:
        raise AuthenticationFailed("AUTH_ID is required")
    key = "bx-auth:" + hashlib.sha256(f"{portal.member_id}:{auth_id}".encode()).hexdigest()
    cached = cache.get(key)
    if cached:
        return int(cached[0]), bool(cached[1])
    try:
        answer = client.call_as(
            portal, "batch", {"halt": 1, "cmd": {"app": "app.info", "me": "profile"}}, token=auth_id
        )
    except IntegrationError as exc:
        logger.warning("AUTH_ID check failed: %s", exc)
        raise AuthenticationFailed("the portal did not accept AUTH_ID") from exc
    results = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(results, dict) or not isinstance(results.get("me"), dict):
        raise AuthenticationFailed("the portal did not accept AUTH_ID")
    app: dict[str, Any] = results["app"] if isinstance(results.get("app"), dict) else {}
    app_id = str(app.get("client_id") or app.get("CODE") or "")
    if settings.BITRIX24_CLIENT_ID and app_id and app_id != settings.BITRIX24_CLIENT_ID:
        raise AuthenticationFailed("AUTH_ID belongs to another application")
    me = results["me"]
    user_id = int(me.get("ID") or 0)
    is_admin = me.get("ADMIN") in (True, "Y", "1", 1, "true")
    if not user_id:
        raise AuthenticationFailed("the portal did not name the user")
    cache.set(key, (user_id, is_admin), timeout=settings.BITRIX24_AUTH_CHECK_CACHE_S)
    return user_id, is_admin


def _refuse(reason: str, status: int = 401) -> HttpResponse:
    return JsonResponse({"error": reason}, status=status)


ViewFunc = Callable[..., HttpResponse]


def frame_entry(view: ViewFunc) -> ViewFunc:
    """For pages Bitrix24 opens in its iframe with a form POST (main page, placements).

    CSRF-exempt only because the POST is authenticated by AUTH_ID (checked on the stored portal's
    REST). Sets `request.bitrix` (PageIdentity), `request.bitrix_portal` and
    `request.bitrix_page_token`; the response may be framed by that portal only.
    """

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(
                "Open this page from Bitrix24.", status=405, content_type="text/plain"
            )
        member_id = request.POST.get("member_id", "")
        portal = Portal.objects.filter(member_id=member_id).first() if member_id else None
        if portal is None or portal.status == Portal.Status.UNINSTALLED:
            logger.warning("frame entry for an unknown portal refused")
            return _refuse("unknown portal: install the app first")
        try:
            user_id, is_admin = frame_user_verify(
                portal=portal, auth_id=request.POST.get("AUTH_ID", "")
            )
        except AuthenticationFailed as exc:
            return _refuse(exc.reason)
        identity = PageIdentity(
            portal_id=portal.pk, member_id=portal.member_id, user_id=user_id, is_admin=is_admin
        )
        request.bitrix = identity  # type: ignore[attr-defined]
        request.bitrix_portal = portal  # type: ignore[attr-defined]
        request.bitrix_page_token = page_token_issue(portal, user_id, is_admin)  # type: ignore[attr-defined]
        response = view(request, *args, **kwargs)
        return security.frame_allow(response, client_endpoint=portal.client_endpoint)

    return wrapper


def page_token_required(view: ViewFunc | None = None, *, admin: bool = False) -> Any:
    """For XHR from app pages: `X-App-Token` must be a valid page token (admin if asked).

    CSRF-exempt because the proof is a header a cross-site form cannot set, not a cookie.
    Sets `request.bitrix` (PageIdentity).
    """

    def decorate(func: ViewFunc) -> ViewFunc:
        @csrf_exempt
        @functools.wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token = request.headers.get(PAGE_TOKEN_HEADER, "")
            if not token:
                return _refuse(f"{PAGE_TOKEN_HEADER} header required")
            try:
                identity = page_token_verify(token)
            except AuthenticationFailed as exc:
                return _refuse(exc.reason)
            if admin and not identity.is_admin:
                return _refuse("administrators only", status=403)
            request.bitrix = identity  # type: ignore[attr-defined]
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
