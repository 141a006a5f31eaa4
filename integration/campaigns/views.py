"""JSON actions of the campaign pages (X-App-Token), doors like bitrixapp/views/actions.py:
check the token, parse, one service, answer. Start/pause/stop are for managers (portal admins);
an agent may pause or resume only themself in a campaign."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bitrixapp import auth
from integration.bitrix.formdata import FormError, form_parse
from integration.campaigns import forms, robot, selectors, services
from integration.campaigns.models import CampaignAgent
from integration.core import inputs

ACTIONS: dict[str, Callable[..., Any]] = {
    "start": services.campaign_start,
    "pause": services.campaign_pause,
    "stop": services.campaign_stop,
}


def _identity(request: HttpRequest) -> auth.PageIdentity:
    return request.bitrix  # type: ignore[attr-defined]


def _not_found() -> JsonResponse:
    return JsonResponse({"error": "not found for this portal"}, status=403)


def _campaign_dict(campaign: Any) -> dict[str, Any]:
    return {"id": campaign.pk, "state": campaign.state, "reason": campaign.state_reason}


@require_POST
@auth.page_token_required(admin=True)
def campaign_action(request: HttpRequest, campaign_id: str, action: str) -> HttpResponse:
    number = inputs.parse_int(campaign_id, field="campaign_id", minimum=1, maximum=inputs.INT64_MAX)
    if action not in ACTIONS:
        raise inputs.InputError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    campaign = selectors.campaign_get(portal=_identity(request).portal_id, campaign_id=number)
    if campaign is None:
        return _not_found()
    try:
        campaign = ACTIONS[action](campaign=campaign)
    except services.CampaignStateError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"campaign": _campaign_dict(campaign)})


@require_POST
@auth.page_token_required
def agent_pause(request: HttpRequest, campaign_id: str, action: str) -> HttpResponse:
    """The agent pauses or resumes themself ("pause me in this campaign")."""
    identity = _identity(request)
    number = inputs.parse_int(campaign_id, field="campaign_id", minimum=1, maximum=inputs.INT64_MAX)
    if action not in ("pause", "resume"):
        raise inputs.InputError("action must be pause or resume", field="action")
    agent = CampaignAgent.objects.filter(
        campaign__portal_id=identity.portal_id, campaign_id=number, bitrix_user_id=identity.user_id
    ).first()
    if agent is None:
        return _not_found()
    agent = services.campaign_agent_pause(agent=agent, paused=action == "pause")
    return JsonResponse({"paused": agent.paused, "reason": agent.pause_reason})


def _body(request: HttpRequest) -> dict[str, Any]:
    return inputs.parse_json_object(request.body, field="body")


@require_POST
@auth.page_token_required(admin=True)
def campaign_create(request: HttpRequest) -> HttpResponse:
    """A new draft campaign; a CRM or call-list source is loaded by a job (the page polls)."""
    identity = _identity(request)
    fields, errors = forms.campaign_fields_parse(_body(request))
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    campaign = services.campaign_create(
        portal=identity.portal, manager_user_id=identity.user_id, **fields
    )
    if campaign.source != campaign.Source.MANUAL:
        services.campaign_load_enqueue(campaign=campaign)
    return JsonResponse({"campaign": _campaign_dict(campaign)}, status=201)


@require_POST
@auth.page_token_required(admin=True)
def campaign_csv(request: HttpRequest, campaign_id: str) -> HttpResponse:
    """Numbers from an uploaded CSV (the request body), deduped like any source."""
    number = inputs.parse_int(campaign_id, field="campaign_id", minimum=1, maximum=inputs.INT64_MAX)
    campaign = selectors.campaign_get(portal=_identity(request).portal_id, campaign_id=number)
    if campaign is None:
        return _not_found()
    if campaign.state == campaign.State.FINISHED:
        return JsonResponse({"error": "the campaign is finished"}, status=409)
    counts = services.items_add(campaign=campaign, entries=forms.csv_entries(request.body))
    return JsonResponse(counts)


@csrf_exempt  # authenticated by application_token, as the event door (bitrixapp/views/events.py)
@require_POST
def robot_add_to_campaign(request: HttpRequest) -> HttpResponse:
    """The robot's HANDLER (docs/campaigns.md, "The robot"): verify, store, 200; a job enrols.

    401 for a wrong application_token, 400/404/409 for a run that cannot be taken; nothing is
    stored unless the answer is 200.
    """
    try:
        payload = form_parse(request.body)
    except (FormError, RequestDataTooBig) as exc:
        return JsonResponse({"error": f"malformed form body: {exc}", "field": "body"}, status=400)
    a = payload.get("auth")
    if not isinstance(a, dict):
        return JsonResponse({"error": "auth[...] is required", "field": "auth"}, status=400)
    try:
        portal = auth.event_authenticate(auth=a)
    except auth.AuthenticationFailed as exc:
        return JsonResponse({"error": exc.reason}, status=401)
    try:
        run = robot.robot_run_parse(portal=portal, payload=payload)
    except robot.RobotRefused as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=exc.status)
    except inputs.InputError as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=400)
    row, created = robot.robot_run_receive(portal=portal, run=run)
    return JsonResponse({"ok": True, "id": row.pk, "duplicate": not created})
