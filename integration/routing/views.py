"""JSON actions of the routing page (X-App-Token), doors like campaigns/views.py: check the
token, parse, one service, answer. The chain is the admins'; the one-click dial belongs to the
person the call was handed to (or an admin). Bad settings answer 400 with field errors and store
nothing (routing/policy.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.views.decorators.http import require_POST

from bitrixapp import auth
from integration.core import inputs
from integration.routing import policy, selectors, services
from integration.routing.models import Reroute


def _identity(request: HttpRequest) -> auth.PageIdentity:
    return request.bitrix  # type: ignore[attr-defined]


def _body(request: HttpRequest) -> dict[str, Any]:
    return inputs.parse_json_object(request.body, field="body")


@require_POST
@auth.page_token_required(admin=True)
def policy_save(request: HttpRequest) -> HttpResponse:
    identity = _identity(request)
    # Field errors are read by the admin next to the field: in the page's language.
    with translation.override(auth.action_lang(request)):
        _saved, errors = policy.policy_save(portal=identity.portal, data=_body(request))
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse({"policy": selectors.policy_dict(portal=identity.portal)})


@require_POST
@auth.page_token_required(admin=True)
def override_save(request: HttpRequest) -> HttpResponse:
    identity = _identity(request)
    body = _body(request)
    with translation.override(auth.action_lang(request)):
        _saved, errors = policy.override_save(
            portal=identity.portal, user_id=body.get("user_id"), data=body
        )
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        return JsonResponse({"overrides": selectors.overrides_list(portal=identity.portal)})


@require_POST
@auth.page_token_required(admin=True)
def override_delete(request: HttpRequest, user_id: str) -> HttpResponse:
    identity = _identity(request)
    uid = inputs.parse_int(user_id, field="user_id", minimum=1, maximum=inputs.INT64_MAX)
    policy.override_delete(portal=identity.portal, user_id=uid)
    with translation.override(auth.action_lang(request)):
        return JsonResponse({"overrides": selectors.overrides_list(portal=identity.portal)})


@require_POST
@auth.page_token_required
def reroute_dial(request: HttpRequest, reroute_id: str) -> HttpResponse:
    """The one-click dial of an ask-first reroute: a new call from the asked person's line."""
    identity = _identity(request)
    number = inputs.parse_int(reroute_id, field="reroute_id", minimum=1, maximum=inputs.INT64_MAX)
    reroute = Reroute.objects.filter(portal_id=identity.portal_id, pk=number).first()
    if reroute is None or (reroute.to_user_id != identity.user_id and not identity.is_admin):
        return JsonResponse({"error": "not found for this user"}, status=403)
    if reroute.state != Reroute.State.ASKED:
        return JsonResponse({"error": "this call is not waiting for a dial"}, status=409)
    services.dial_enqueue(reroute=reroute)
    return JsonResponse({"reroute": reroute.pk, "state": "dialing"}, status=202)
