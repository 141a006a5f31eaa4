"""JSON actions of agent status, called from app pages with the page token (X-App-Token).

Doors only, authenticated like bitrixapp/views/actions.py: every lookup is by the token's
portal (another portal's agent is "not found", 403). An agent changes only their own toggle;
changing someone else's state, retrying sync and the switches are for administrators.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from bitrixapp import auth
from integration.agents import poll, push, reverse, selectors, services
from integration.agents.models import AgentSync, Toggle
from integration.core import inputs

NOTE_MAX = 255


def _identity(request: HttpRequest) -> auth.PageIdentity:
    return request.bitrix  # type: ignore[attr-defined]


def _lang(request: HttpRequest) -> str:
    """The page's language (X-App-Lang, Bitrix24's codes: `ua` is Ukrainian), else the portal's."""
    portal = _identity(request).portal
    code = (request.headers.get("X-App-Lang") or "").strip().lower()[:8]
    code = {"ua": "uk"}.get(code, code)
    supported = {c for c, _ in settings.LANGUAGES}
    if code in supported:
        return code
    return portal.lang if portal.lang in supported else "en"


def _body(request: HttpRequest) -> dict[str, Any]:
    return inputs.parse_json_object(request.body, field="body")


def _toggle_from(body: dict[str, Any]) -> tuple[str, str]:
    toggle = body.get("toggle")
    if toggle not in Toggle.values:
        raise inputs.InputError(f"toggle must be one of {', '.join(Toggle.values)}", field="toggle")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise inputs.InputError(f"note must be text of at most {NOTE_MAX} characters", field="note")
    return str(toggle), note.strip()


def _not_found() -> JsonResponse:
    return JsonResponse({"error": "not found for this portal"}, status=403)


@require_GET
@auth.page_token_required
def agents_list(request: HttpRequest) -> HttpResponse:
    portal = _identity(request).portal
    with translation.override(_lang(request)):
        return JsonResponse(
            {
                "agents": selectors.agent_rows(portal=portal),
                "summary": selectors.presence_summary(portal=portal),
            }
        )


@auth.page_token_required
def agent_me(request: HttpRequest) -> HttpResponse:
    """GET: my own state; POST {toggle, note}: set my own toggle."""
    identity = _identity(request)
    agent = selectors.agent_for_user(portal=identity.portal, user_id=identity.user_id)
    with translation.override(_lang(request)):
        if agent is None:
            return JsonResponse({"agent": None, "message": _("You have no Unitalk line.")})
        if request.method == "POST":
            toggle, note = _toggle_from(_body(request))
            agent = reverse.agent_toggle(agent=agent, toggle=toggle, note=note)
        elif request.method != "GET":
            return JsonResponse({"error": "GET or POST"}, status=405)
        return JsonResponse({"agent": selectors.agent_dict(agent)})


@require_POST
@auth.page_token_required(admin=True)
def agent_toggle(request: HttpRequest, agent_id: str) -> HttpResponse:
    """An administrator sets another agent's toggle (e.g. Offline for someone who left)."""
    identity = _identity(request)
    agent = selectors.agent_get(
        portal=identity.portal,
        agent_id=inputs.parse_int(agent_id, field="agent_id", minimum=1, maximum=inputs.INT64_MAX),
    )
    if agent is None:
        return _not_found()
    toggle, note = _toggle_from(_body(request))
    agent = reverse.agent_toggle(agent=agent, toggle=toggle, note=note)
    with translation.override(_lang(request)):
        return JsonResponse({"agent": selectors.agent_dict(agent)})


@require_POST
@auth.page_token_required(admin=True)
def agent_retry(request: HttpRequest, agent_id: str) -> HttpResponse:
    """Retry sync now: a fresh poll of the portal and, when switched on, a push."""
    identity = _identity(request)
    agent = selectors.agent_get(
        portal=identity.portal,
        agent_id=inputs.parse_int(agent_id, field="agent_id", minimum=1, maximum=inputs.INT64_MAX),
    )
    if agent is None:
        return _not_found()
    job = poll.poll_now_enqueue(portal=identity.portal)
    push.push_enqueue(agent=agent, force=True)
    return JsonResponse({"job": job.pk})


@require_POST
@auth.page_token_required(admin=True)
def sync_settings_save(request: HttpRequest) -> HttpResponse:
    """{push_enabled, reverse_enabled}: booleans; anything else is refused, nothing stored."""
    identity = _identity(request)
    body = _body(request)
    values: dict[str, bool] = {}
    for name in ("push_enabled", "reverse_enabled"):
        if name in body:
            if not isinstance(body[name], bool):
                raise inputs.InputError(f"{name} must be true or false", field=name)
            values[name] = body[name]
    sync = services.agent_sync_get(portal=identity.portal)
    push_changed = "push_enabled" in values and values["push_enabled"] != sync.push_enabled
    AgentSync.objects.filter(pk=sync.pk).update(**values)
    sync.refresh_from_db()
    if push_changed:
        push.push_settings_changed(portal=identity.portal, sync=sync)
    return JsonResponse({"saved": True, "sync": selectors.sync_settings(portal=identity.portal)})
