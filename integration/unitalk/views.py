"""The Unitalk part of the settings page: the API key, the connection test, users ↔ lines.

JSON actions called with the page token (X-App-Token), for portal administrators only; mounted
under /bitrix/actions/ by bitrixapp/urls.py (integration/unitalk/urls.py). Doors only: what talks
to Unitalk (the test, automatic matching) is a job the page polls (`actions/jobs/<id>/`); every
lookup is by the token's portal (docs/pages.md).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from bitrixapp import auth
from bitrixapp.models import Portal
from integration import jobs
from integration.bitrix import users as bitrix_users
from integration.core import inputs
from integration.unitalk import mapping as mapping_rules
from integration.unitalk import selectors, services


def _portal(request: HttpRequest) -> Portal:
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    return identity.portal


def _body(request: HttpRequest) -> dict[str, Any]:
    return inputs.parse_json_object(request.body, field="body")


def _status(request: HttpRequest, portal: Portal) -> dict[str, Any]:
    health = selectors.health_get(portal=portal)
    with translation.override(auth.action_lang(request)):
        html = render_to_string("pages/_health.html", {"health": health})
    return {"unitalk_state": health["unitalk_state"], "health_html": html}


@require_POST
@auth.page_token_required(admin=True)
def settings_key(request: HttpRequest) -> HttpResponse:
    """Store a new Unitalk API key (write-only: the answer shows its last 4 characters)."""
    portal = _portal(request)
    key = str(_body(request).get("api_key") or "").strip()
    with translation.override(auth.action_lang(request)):
        if not key:
            return JsonResponse(
                {"errors": {"api_key": _("Enter the API key from your Unitalk account.")}},
                status=400,
            )
        if len(key) > 256 or any(c.isspace() for c in key):
            return JsonResponse(
                {"errors": {"api_key": _("This does not look like a Unitalk API key.")}},
                status=400,
            )
    connection = services.connection_save_key(portal=portal, api_key=key)
    # Checked on save: Unitalk is asked by a job (never inside this request); the page polls
    # it and redraws the status from `settings_status`, the one source of the page's state.
    job = services.connection_test_enqueue(portal=portal)
    return JsonResponse(
        {
            "key_masked": connection.api_key_masked,
            "job": job.pk,
            "webhook_url": selectors.connection_webhook_url(connection=connection),
            "webhook_secret": connection.webhook_secret,
        }
        | _status(request, portal)
    )


@require_GET
@auth.page_token_required(admin=True)
def settings_status(request: HttpRequest) -> HttpResponse:
    """The settings page's status (health panel, key state) as it is now."""
    portal = _portal(request)
    key = selectors.connection_settings_get(portal=portal)["key_masked"]
    return JsonResponse({"key_masked": key} | _status(request, portal))


@require_POST
@auth.page_token_required(admin=True)
def settings_test(request: HttpRequest) -> HttpResponse:
    portal = _portal(request)
    if selectors.connection_settings_get(portal=portal)["key_masked"] == "":
        with translation.override(auth.action_lang(request)):
            # Unitalk is not asked at all: say so, not "Unitalk did not accept".
            message = _("Enter your Unitalk API key and save it first.")
        return JsonResponse({"errors": {"api_key": message}, "error": message}, status=400)
    job = services.connection_test_enqueue(portal=portal)
    return JsonResponse({"job": job.pk}, status=202)


@require_POST
@auth.page_token_required(admin=True)
def operators_sync(request: HttpRequest) -> HttpResponse:
    """Auto-match users and lines now (the same job beat runs hourly)."""
    portal = _portal(request)
    job = jobs.job_enqueue(
        kind=services.KIND_OPERATORS_SYNC, portal=portal, subject=f"portal:{portal.pk}"
    )
    return JsonResponse({"job": job.pk}, status=202)


@require_GET
@auth.page_token_required(admin=True)
def operator_rows(request: HttpRequest) -> HttpResponse:
    """The mapping table's rows as HTML, to redraw it after a sync or a manual mapping."""
    portal = _portal(request)
    people = bitrix_users.people_get(portal=portal)
    mappings = selectors.connection_settings_get(portal=portal)["mappings"]
    for mapping in mappings:
        mapping.person = bitrix_users.person_dict(people, mapping.bitrix_user_id)
    with translation.override(auth.action_lang(request)):
        html = render_to_string("pages/_mapping_rows.html", {"mappings": mappings})
    return JsonResponse({"html": html})


@require_POST
@auth.page_token_required(admin=True)
def operator_map(request: HttpRequest) -> HttpResponse:
    """Map a user to a line by hand (`remove: true` removes the user's row).

    A mapping that takes a line from another user, or moves this user off their line, answers
    409 with what would change, unless the page sends `confirm: true` after asking.
    """
    portal = _portal(request)
    data = _body(request)
    known = bitrix_users.users_directory(portal=portal)
    with translation.override(auth.action_lang(request)):
        user, line, errors = _mapping_fields(data, known, remove=bool(data.get("remove")))
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        if data.get("remove"):
            services.operator_unmap(portal=portal, bitrix_user_id=user)
            return JsonResponse({"removed": True})
        conflicts = mapping_rules.operator_map_conflicts(
            portal=portal, bitrix_user_id=user, line=line
        )
        if conflicts and data.get("confirm") is not True:
            names = known or {}
            changes = [
                _("Line %(line)s is now %(user)s's and will be taken from them.")
                % {"line": c.line, "user": names.get(c.bitrix_user_id, f"#{c.bitrix_user_id}")}
                if c.line == line
                else _("%(user)s will no longer have line %(line)s.")
                % {"line": c.line, "user": names.get(c.bitrix_user_id, f"#{c.bitrix_user_id}")}
                for c in conflicts
            ]
            return JsonResponse({"confirm": changes}, status=409)
    mapping = services.operator_map_manual(portal=portal, bitrix_user_id=user, line=line)
    return JsonResponse({"user_id": mapping.bitrix_user_id, "line": mapping.line})


def _mapping_fields(
    data: dict[str, Any], known: dict[int, str] | None, *, remove: bool
) -> tuple[int, str, dict[str, str]]:
    """(user, line, errors) of a manual mapping, each error the one that is true."""
    errors: dict[str, str] = {}
    raw_user = str(data.get("user_id") or "").strip()
    line = str(data.get("line") or "").strip()
    # ASCII digits only (integration/core/inputs.py): "²".isdigit() is true, int("²") fails.
    user = inputs.positive_id_or_none(raw_user) or 0
    if not raw_user:
        errors["user_id"] = _("Choose the Bitrix24 user.")
    elif not user:
        errors["user_id"] = _("Enter a Bitrix24 user id (a positive number).")
    elif known is not None and user not in known:
        errors["user_id"] = _("There is no active user %(id)s on this portal.") % {"id": user}
    if remove:
        return user, line, errors
    if not line:
        errors["line"] = _("Enter the Unitalk inner line, e.g. 101.")
    elif len(line) > 32 or not line.replace("*", "").replace("#", "").isalnum():
        errors["line"] = _("An inner line is a short number, e.g. 101.")
    return user, line, errors
