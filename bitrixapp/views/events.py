"""The event door: Bitrix24 POSTs events here (form-encoded, bracketed keys, no retries).

Authenticate by application_token, store once, answer 200 at once; a worker does the rest.
ONAPPINSTALL is the exception: it is the install handshake (checked with the OAuth server).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bitrixapp import auth, services
from integration.bitrix.formdata import FormError, form_parse
from integration.errors import CredentialsInvalidError, IntegrationError

logger = logging.getLogger(__name__)


def _bad(reason: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status)


def _install_from_event(payload: dict[str, Any]) -> HttpResponse:
    a = payload["auth"]
    user = str(a.get("user_id") or "")
    grant = services.InstallGrant(
        member_id=str(a.get("member_id") or ""),
        client_endpoint=str(a.get("client_endpoint") or ""),
        access_token=str(a.get("access_token") or ""),
        refresh_token=str(a.get("refresh_token") or ""),
        expires_in=float(a["expires_in"]) if str(a.get("expires_in", "")).isdigit() else None,
        application_token=str(a.get("application_token") or ""),
        scope=str(a.get("scope") or ""),
        user_id=int(user) if user.isdigit() else None,
        lang=str((payload.get("data") or {}).get("LANGUAGE_ID") or "en"),
        server_endpoint=str(a.get("server_endpoint") or ""),
    )
    try:
        services.portal_install(grant=grant)
    except services.InstallRefused as exc:
        logger.warning("ONAPPINSTALL refused: %s", exc.message)
        return _bad(exc.message, 403)
    except CredentialsInvalidError:
        logger.warning("ONAPPINSTALL refused: token not accepted by the OAuth server")
        return _bad("token not accepted", 401)
    except IntegrationError as exc:
        logger.warning("ONAPPINSTALL handshake failed: %s", exc)
        return _bad("handshake failed, try again", 503)
    return JsonResponse({"ok": True})


@csrf_exempt  # authenticated by application_token (or, for ONAPPINSTALL, by app.info)
def events(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _bad("POST only", 405)
    try:
        body = request.body
    except RequestDataTooBig:
        return _bad("body too large", 400)
    try:
        payload = form_parse(body)
    except FormError as exc:
        return _bad(f"malformed form body: {exc}")
    event = str(payload.get("event") or "").upper() if isinstance(payload.get("event"), str) else ""
    a = payload.get("auth")
    if not event or not isinstance(a, dict):
        return _bad("event and auth[...] are required")
    if payload.get("data") is not None and not isinstance(payload.get("data"), dict):
        return _bad("data must be a map")
    if event == "ONAPPINSTALL":
        return _install_from_event(payload)
    try:
        portal = auth.event_authenticate(auth=a)
    except auth.AuthenticationFailed as exc:
        logger.warning("event refused: %s", exc.reason, extra={"event": event[:64]})
        return _bad(exc.reason, 401)
    if event == "ONAPPUNINSTALL":
        clean = str((payload.get("data") or {}).get("CLEAN") or "0") == "1"
        services.portal_uninstall(portal=portal, clean=clean)
        return JsonResponse({"ok": True})
    row, created = services.event_receive(portal=portal, payload=payload)
    return JsonResponse({"ok": True, "id": row.pk, "duplicate": not created})
