"""Who is calling: Bitrix24 events (application_token), iframe entries (AUTH_ID), page requests.

- Events: `event_authenticate(auth)` compares `auth[application_token]` in constant time with the
  value stored for `auth[member_id]` (docs/bitrix24.md §1.4; the only proof ONAPPUNINSTALL carries).
- Iframe entry POSTs (main page, placements): `frame_entry` validates AUTH_ID on the portal's own
  REST (the stored client_endpoint, never the DOMAIN in the request) with `app.info` + `profile`
  + `user.admin`, confirms with the OAuth server that the token is that portal's, caches a
  positive answer briefly, and issues a page token.
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
from integration.bitrix import client, oauth
from integration.core import inputs
from integration.core.errors import IntegrationError
from integration.core.log import secret_note

logger = logging.getLogger(__name__)

PAGE_TOKEN_SALT = "bitrixapp.page-token"
PAGE_TOKEN_HEADER = "X-App-Token"


def page_lang(raw: str | None, *, fallback: str = "en") -> str:
    """Our language for Bitrix24's LANG (`ua` is Bitrix24's code for Ukrainian)."""
    code = (raw or "").strip().lower()[:8]
    code = {"ua": "uk"}.get(code, code)
    supported = {c for c, _ in settings.LANGUAGES}
    if code in supported:
        return code
    return fallback if fallback in supported else "en"


def action_lang(request: HttpRequest) -> str:
    """The language of a page action: the page's X-App-Lang, else the token portal's."""
    identity: PageIdentity = request.bitrix  # type: ignore[attr-defined]
    return page_lang(request.headers.get("X-App-Lang"), fallback=identity.portal.lang)


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


@dataclass(frozen=True)
class PortalUser:
    """Who a user token belongs to, as the portal itself answered."""

    user_id: int
    is_admin: bool


def portal_user_ask(*, portal: Portal, token: str) -> PortalUser:
    """Ask the portal at `portal.client_endpoint` whose token this is and whether they are an admin.

    One `batch` with app.info (the token is for our app), profile (who it is) and user.admin
    (the portal's own answer to "is this user an administrator", docs/security.md). The
    endpoint is the stored or OAuth-server-verified one, never a URL from the request; a portal
    refuses another portal's token there. Raises AuthenticationFailed.
    """
    if not token:
        raise AuthenticationFailed("AUTH_ID is required")
    try:
        answer = client.call_as(
            portal,
            "batch",
            {"halt": 1, "cmd": {"app": "app.info", "me": "profile", "admin": "user.admin"}},
            token=token,
        )
    except IntegrationError as exc:
        logger.warning("user token check failed: %s", exc)
        raise AuthenticationFailed("the portal did not accept AUTH_ID") from exc
    results = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(results, dict) or not isinstance(results.get("me"), dict):
        raise AuthenticationFailed("the portal did not accept AUTH_ID")
    app: dict[str, Any] = results["app"] if isinstance(results.get("app"), dict) else {}
    app_id = str(app.get("client_id") or app.get("CODE") or "")
    if settings.BITRIX24_CLIENT_ID and app_id and app_id != settings.BITRIX24_CLIENT_ID:
        raise AuthenticationFailed("AUTH_ID belongs to another application")
    try:
        user_id = inputs.parse_int(results["me"].get("ID"), field="profile.ID", minimum=1)
    except inputs.InputError as exc:
        raise AuthenticationFailed("the portal did not name the user") from exc
    # Only a literal true is an admin: a missing or failed user.admin is not (fail closed).
    return PortalUser(user_id=user_id, is_admin=results.get("admin") is True)


def _owner_confirm(*, portal: Portal, token: str) -> None:
    """The OAuth server must say `token` was issued for this portal (and our app).

    The portal's own answer does not name the portal (app.info on a portal carries no
    member_id), so the OAuth server's app.info ties the token to `portal.member_id`.
    Raises AuthenticationFailed.
    """
    try:
        info = oauth.token_inspect(access_token=token)
    except IntegrationError as exc:
        logger.warning("user token not confirmed by the OAuth server: %s", exc)
        raise AuthenticationFailed("the portal did not accept AUTH_ID") from exc
    if info.member_id != portal.member_id:
        logger.warning("user token of another portal refused", extra={"portal": portal.member_id})
        raise AuthenticationFailed("AUTH_ID belongs to another portal")
    if (
        settings.BITRIX24_CLIENT_ID
        and info.client_id
        and info.client_id != settings.BITRIX24_CLIENT_ID
    ):
        raise AuthenticationFailed("AUTH_ID belongs to another application")


def frame_user_verify(*, portal: Portal, auth_id: str) -> tuple[int, bool]:
    """(user_id, is_admin) of the user whose AUTH_ID this is: it must be portal's own token.

    Checked on the portal's stored REST endpoint (`portal_user_ask`) and with the OAuth server
    (`_owner_confirm`: the token belongs to this member_id). A positive answer is cached for
    BITRIX24_AUTH_CHECK_CACHE_S under a hash of (member_id, token).
    """
    if not auth_id:
        raise AuthenticationFailed("AUTH_ID is required")
    secret_note(auth_id)
    key = "bx-auth:" + hashlib.sha256(f"{portal.member_id}:{auth_id}".encode()).hexdigest()
    cached = cache.get(key)
    if cached:
        return int(cached[0]), bool(cached[1])
    user = portal_user_ask(portal=portal, token=auth_id)
    _owner_confirm(portal=portal, token=auth_id)
    cache.set(key, (user.user_id, user.is_admin), timeout=settings.BITRIX24_AUTH_CHECK_CACHE_S)
    return user.user_id, user.is_admin


def _refuse(reason: str, status: int = 401) -> HttpResponse:
    return JsonResponse({"error": reason}, status=status)


def input_refused(exc: inputs.InputError) -> HttpResponse:
    """400 naming the field a page or action got wrong (integration.core.inputs)."""
    return JsonResponse({"error": exc.message, "field": exc.field}, status=400)


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
        nonce = security.nonce_new()
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        try:
            response = view(request, *args, **kwargs)
        except inputs.InputError as exc:
            response = input_refused(exc)
        return security.frame_allow(response, client_endpoint=portal.client_endpoint, nonce=nonce)

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
            try:
                response = func(request, *args, **kwargs)
            except inputs.InputError as exc:
                response = input_refused(exc)
            # Answers carry ids, names and sometimes the webhook secret: never cached.
            response["Cache-Control"] = "no-store"
            return response

        return wrapper

    return decorate(view) if view is not None else decorate
