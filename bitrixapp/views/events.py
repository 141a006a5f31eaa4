"""The event door: Bitrix24 POSTs events here (form-encoded, bracketed keys, no retries).

Authenticate by application_token, store once, answer 200 at once; a worker does the rest.
ONAPPINSTALL is the exception: it is the install handshake (checked with the OAuth server, and
its user must be an administrator of the portal: services.portal_install). Bitrix24 may post it
to the installation URL as well (apps that also use the API); `install_event` serves that.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bitrixapp import auth, services
from integration.bitrix.formdata import FormError, form_parse
from integration.core import inputs
from integration.core.errors import CredentialsInvalidError, IntegrationError
from integration.core.log import secret_note

logger = logging.getLogger(__name__)

#: A token lives an hour (docs/security.md); anything above a year is not a lifetime.
MAX_EXPIRES_IN_S = 365 * 24 * 3600


def _bad(reason: str, status: int = 400, field: str | None = None) -> JsonResponse:
    body = {"error": reason} | ({"field": field} if field else {})
    return JsonResponse(body, status=status)


def _install_from_event(payload: dict[str, Any]) -> HttpResponse:
    a = payload["auth"]
    grant = services.InstallGrant(
        member_id=str(a.get("member_id") or ""),
        client_endpoint=str(a.get("client_endpoint") or ""),
        access_token=str(a.get("access_token") or ""),
        refresh_token=str(a.get("refresh_token") or ""),
        expires_in=inputs.parse_int_or_none(
            a.get("expires_in"), field="auth[expires_in]", maximum=MAX_EXPIRES_IN_S
        ),
        application_token=str(a.get("application_token") or ""),
        scope=str(a.get("scope") or ""),
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


def _parse(request: HttpRequest) -> tuple[str, dict[str, Any]] | HttpResponse:
    """(EVENT, payload) of a well-formed event POST, or the refusal to answer."""
    if request.method != "POST":
        return _bad("POST only", 405)
    try:
        body = request.body
    except RequestDataTooBig:
        return _bad("body too large", 400, "body")
    try:
        payload = form_parse(body)
    except FormError as exc:
        return _bad(f"malformed form body: {exc}", 400, "body")
    event = str(payload.get("event") or "").upper() if isinstance(payload.get("event"), str) else ""
    a = payload.get("auth")
    if not event or not isinstance(a, dict):
        return _bad("event and auth[...] are required", 400, "event")
    if payload.get("data") is not None and not isinstance(payload.get("data"), dict):
        return _bad("data must be a map", 400, "data")
    for name in ("access_token", "refresh_token", "application_token"):
        secret_note(a.get(name))
    return event, payload


def _check_numbers(payload: dict[str, Any]) -> None:
    """The numbers an event carries must be numbers (InputError names the first that is not)."""
    data = payload.get("data") or {}
    inputs.parse_int_or_none(payload["auth"].get("user_id"), field="auth[user_id]")
    for name in ("USER_ID", "CRM_ENTITY_ID", "CALL_LIST_ID"):
        inputs.parse_int_or_none(data.get(name), field=f"data[{name}]")


@csrf_exempt  # authenticated by application_token (or, for ONAPPINSTALL, by app.info)
def events(request: HttpRequest) -> HttpResponse:
    parsed = _parse(request)
    if isinstance(parsed, HttpResponse):
        return parsed
    event, payload = parsed
    try:
        _check_numbers(payload)
        if event == "ONAPPINSTALL":
            return _install_from_event(payload)
    except inputs.InputError as exc:
        return _bad(exc.message, 400, exc.field)
    try:
        portal = auth.event_authenticate(auth=payload["auth"])
    except auth.AuthenticationFailed as exc:
        logger.warning("event refused: %s", exc.reason, extra={"event": event[:64]})
        return _bad(exc.reason, 401)
    if event == "ONAPPUNINSTALL":
        clean = str((payload.get("data") or {}).get("CLEAN") or "0") == "1"
        services.portal_uninstall(portal=portal, clean=clean)
        return JsonResponse({"ok": True})
    row, created = services.event_receive(portal=portal, payload=payload)
    return JsonResponse({"ok": True, "id": row.pk, "duplicate": not created})


def install_event(request: HttpRequest) -> HttpResponse:
    """ONAPPINSTALL posted to the installation URL: the same handshake as at the event door."""
    parsed = _parse(request)
    if isinstance(parsed, HttpResponse):
        return parsed
    event, payload = parsed
    if event != "ONAPPINSTALL":
        return _bad("only ONAPPINSTALL is accepted at the installation URL", 400, "event")
    try:
        _check_numbers(payload)
        return _install_from_event(payload)
    except inputs.InputError as exc:
        return _bad(exc.message, 400, exc.field)
