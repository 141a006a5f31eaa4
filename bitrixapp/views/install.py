"""The install door: Bitrix24 opens it in an iframe (form POST, docs/bitrix24.md §1.2).

The one place a request may call Bitrix24: the handshake that checks AUTH_ID with the OAuth
server and asks the portal whether its user is an administrator (only they may install). Binding (events, placements, line) runs as a job; the page polls the portal's state and
calls BX24.installFinish() only once the job succeeded, so a portal is never half-installed.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from bitrixapp import auth, security, services
from bitrixapp.views import events
from integration.core import inputs
from integration.core.errors import CredentialsInvalidError, IntegrationError
from integration.core.log import secret_note
from integration.models import Job

logger = logging.getLogger(__name__)


def _refused(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    return render(request, "bitrix/install_refused.html", {"reason": reason}, status=status)


@csrf_exempt  # authenticated by validating AUTH_ID with the OAuth server (services.portal_install)
def install(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse("Open this page from Bitrix24.", status=405, content_type="text/plain")
    if "event" in request.POST and "AUTH_ID" not in request.POST:
        # Bitrix24 posts ONAPPINSTALL here for apps that also use the API (docs/security.md).
        return events.install_event(request)
    for name in ("AUTH_ID", "REFRESH_ID", "APPLICATION_TOKEN"):
        secret_note(request.POST.get(name))
    domain = request.GET.get("DOMAIN", "")
    scheme = "https" if request.GET.get("PROTOCOL", "1") == "1" else "http"
    try:
        expires = inputs.parse_int_or_none(
            request.POST.get("AUTH_EXPIRES"),
            field="AUTH_EXPIRES",
            maximum=events.MAX_EXPIRES_IN_S,
        )
    except inputs.InputError as exc:
        return _refused(request, exc.message, 400)
    grant = services.InstallGrant(
        member_id=request.POST.get("member_id", ""),
        client_endpoint=f"{scheme}://{domain}/rest/" if domain else "",
        access_token=request.POST.get("AUTH_ID", ""),
        refresh_token=request.POST.get("REFRESH_ID", ""),
        expires_in=expires,
        application_token=request.POST.get("APPLICATION_TOKEN", ""),
        scope=request.POST.get("APPLICATION_SCOPE", ""),
        lang=request.GET.get("LANG", "en"),
        server_endpoint=request.POST.get("SERVER_ENDPOINT", ""),
    )
    try:
        installed = services.portal_install(grant=grant)
    except services.InstallRefused as exc:
        logger.warning("install refused: %s", exc.message)
        return _refused(request, exc.message, 403)
    except CredentialsInvalidError as exc:
        logger.warning("install refused: token not accepted (%s)", exc)
        return _refused(request, "Bitrix24 did not confirm this installation.", 401)
    except IntegrationError as exc:
        logger.warning("install handshake failed: %s", exc)
        return _refused(request, "Bitrix24 could not be reached; reopen the app to retry.", 503)
    portal = installed.portal
    nonce = security.nonce_new()
    request.csp_nonce = nonce  # type: ignore[attr-defined]
    response = render(
        request,
        "bitrix/install.html",
        {
            "portal": portal,
            "page_token": auth.page_token_issue(portal, installed.user_id, installed.is_admin),
            "bx24_js_url": settings.BITRIX24_JS_URL,
            "status_url": "/bitrix/install/status/",
        },
    )
    return security.frame_allow(response, client_endpoint=portal.client_endpoint, nonce=nonce)


@auth.page_token_required
def install_status(request: HttpRequest) -> JsonResponse:
    """What the install page polls: the portal's state and the binding job's last error."""
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    portal = identity.portal
    job = Job.objects.filter(portal=portal, kind=services.KIND_INSTALL).order_by("-pk").first()
    return JsonResponse(
        {
            "status": portal.status,
            "reason": portal.status_reason,
            "job": {
                "state": job.state,
                "attempts": job.attempts,
                "last_error": job.last_error,
            }
            if job
            else None,
        }
    )
