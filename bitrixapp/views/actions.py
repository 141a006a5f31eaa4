"""JSON actions the app pages call with the page token in the X-App-Token header.

Doors only: check the token (and admin where settings change), parse, call one service or
selector, answer. Every lookup is by the token's portal, so another portal's ids are "not
found" (403): a page of portal A cannot read or change portal B. Work that talks to Unitalk or
Bitrix24 (connection test, operator matching, retries) is queued as a job; pages poll `job`.

The X-App-Token header is also the CSRF defence: a cross-site form or image cannot set a custom
header, and the token is never in a cookie (docs/pages.md).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from bitrixapp import auth, selectors, services
from bitrixapp.models import Portal
from bitrixapp.views import pages
from integration.calls import failed
from integration.calls.models import FailedCall
from integration.core import inputs

LANG_HEADER = "X-App-Lang"
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
BULK_MAX = 200


def _portal(request: HttpRequest) -> Portal:
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    return identity.portal


def _identity(request: HttpRequest) -> auth.PageIdentity:
    return request.bitrix  # type: ignore[attr-defined]


def _body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object the page sent (empty body: {}). Raises InputError (400 naming `body`)."""
    if not request.body.strip():
        return {}
    if request.content_type in FORM_TYPES:
        # A form with no fields (a bare POST from a form or test client) says nothing.
        try:
            if not request.POST:
                return {}
        except (MultiPartParserError, RequestDataTooBig, TooManyFieldsSent):
            pass
        raise inputs.InputError("body must be a JSON object", field="body")
    data = inputs.parse_json(request.body, field="body")
    if not isinstance(data, dict):
        raise inputs.InputError("body must be a JSON object", field="body")
    return data


def _id(value: str, field: str) -> int:
    """A row id from the URL (digits by the route; bounded here: InputError past bigint)."""
    return inputs.parse_int(value, field=field, minimum=1, maximum=inputs.INT64_MAX)


def _lang(request: HttpRequest, portal: Portal) -> str:
    return selectors.page_lang(request.headers.get(LANG_HEADER), fallback=portal.lang)


def _not_found() -> JsonResponse:
    # 403 rather than 404: the id may exist, but never for this page's portal.
    return JsonResponse({"error": "not found for this portal"}, status=403)


@require_GET
@auth.page_token_required
def overview(request: HttpRequest) -> HttpResponse:
    """Counts and banners now (pages poll it, so a banner goes away when its cause does)."""
    identity, portal = _identity(request), _portal(request)
    page = request.GET.get("page", "")[:16]
    with translation.override(_lang(request, portal)):
        data = pages.banners_context(identity=identity, portal=portal, page=page)
        data["banners_html"] = render_to_string(
            "pages/_banners.html", {"banners": data["banners"], "identity": identity}
        )
    return JsonResponse(data)


@require_GET
@auth.page_token_required
def failed_list(request: HttpRequest) -> HttpResponse:
    """One page of a list; wrong filters answer 400 with a message per field, not a silent
    "nothing here"."""
    portal = _portal(request)
    with translation.override(_lang(request, portal)):
        try:
            filters = selectors.failed_filters_parse(request.GET)
        except selectors.FiltersInvalid as exc:
            field, message = next(iter(exc.errors.items()))
            return JsonResponse(
                {"errors": exc.errors, "field": field, "error": message}, status=400
            )
        page = inputs.parse_int_or_none(request.GET.get("page"), field="page", minimum=1) or 1
        data = selectors.failed_page_get(portal=portal, filters=filters, page=page)
    data["counts"] = failed.failed_call_counts(portal=portal)
    return JsonResponse(data)


@require_POST
@auth.page_token_required
def failed_retry(request: HttpRequest, item_id: str) -> HttpResponse:
    portal = _portal(request)
    item = selectors.failed_item_get(portal=portal, item_id=_id(item_id, "item_id"))
    if item is None:
        return _not_found()
    try:
        item = failed.failed_call_retry(item=item)
    except ValueError as exc:
        with translation.override(_lang(request, portal)):
            return JsonResponse({"error": _retry_refusal(str(exc))}, status=400)
    return JsonResponse({"item": selectors.failed_item_dict(item)})


def _retry_refusal(reason: str) -> str:
    if "resolved" in reason:
        return _("This item is already resolved.")
    return _("Nothing to retry for this item; call the number back instead.")


@require_POST
@auth.page_token_required
def failed_retry_bulk(request: HttpRequest) -> HttpResponse:
    """Retry many items; each answers on its own (retried / refused with the reason)."""
    portal = _portal(request)
    raw = _body(request).get("ids", [])
    if not isinstance(raw, list):
        raise inputs.InputError("ids must be a list of item ids", field="ids")
    if len(raw) > BULK_MAX:
        raise inputs.InputError(f"at most {BULK_MAX} ids at once", field="ids")
    ids = [
        inputs.parse_int(i, field=f"ids[{n}]", minimum=1, maximum=inputs.INT64_MAX)
        for n, i in enumerate(raw)
    ]
    results: dict[str, str] = {}
    for item in FailedCall.objects.filter(portal=portal, pk__in=ids).select_related("job"):
        try:
            failed.failed_call_retry(item=item)
            results[str(item.pk)] = "retrying"
        except ValueError as exc:
            results[str(item.pk)] = str(exc)
    for missing in set(map(str, ids)) - set(results):
        results[missing] = "not found for this portal"
    return JsonResponse({"results": results})


@require_POST
@auth.page_token_required
def failed_resolve(request: HttpRequest, item_id: str) -> HttpResponse:
    portal = _portal(request)
    item = selectors.failed_item_get(portal=portal, item_id=_id(item_id, "item_id"))
    if item is None:
        return _not_found()
    note = str(_body(request).get("resolution") or "resolved by a manager")[:255]
    failed.failed_call_resolve(item=item, resolution=note, user_id=_identity(request).user_id)
    item.refresh_from_db()
    return JsonResponse({"item": selectors.failed_item_dict(item)})


@require_POST
@auth.page_token_required(admin=True)
def settings_save(request: HttpRequest) -> HttpResponse:
    portal = _portal(request)
    with translation.override(_lang(request, portal)):
        try:
            options = services.options_update(
                portal=portal, user_id=_identity(request).user_id, data=_body(request)
            )
        except services.OptionsInvalid as exc:
            return JsonResponse({"errors": exc.errors}, status=400)
    return JsonResponse({"saved": True, "updated_at": options.updated_at.isoformat()})


@require_POST
@auth.page_token_required(admin=True)
def settings_key(request: HttpRequest) -> HttpResponse:
    """Store a new Unitalk API key (write-only: the answer shows its last 4 characters)."""
    from integration.unitalk import services as unitalk_services

    portal = _portal(request)
    key = str(_body(request).get("api_key") or "").strip()
    with translation.override(_lang(request, portal)):
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
    connection = unitalk_services.connection_save_key(portal=portal, api_key=key)
    # Checked on save: Unitalk is asked by a job (never inside this request); the page polls
    # it and redraws the status from `settings_status`, the one source of the page's state.
    job = services.connection_test_enqueue(portal=portal)
    return JsonResponse(
        {
            "key_masked": connection.api_key_masked,
            "job": job.pk,
            "webhook_url": unitalk_services.connection_webhook_url(connection=connection),
            "webhook_secret": connection.webhook_secret,
        }
        | _status(request, portal)
    )


def _status(request: HttpRequest, portal: Portal) -> dict[str, Any]:
    health = selectors.health_get(portal=portal)
    with translation.override(_lang(request, portal)):
        html = render_to_string("pages/_health.html", {"health": health})
    return {"unitalk_state": health["unitalk_state"], "health_html": html}


@require_GET
@auth.page_token_required(admin=True)
def settings_status(request: HttpRequest) -> HttpResponse:
    """The settings page's status (health panel, key state) as it is now."""
    portal = _portal(request)
    key = selectors.settings_get(portal=portal)["key_masked"]
    return JsonResponse({"key_masked": key} | _status(request, portal))


@require_POST
@auth.page_token_required(admin=True)
def settings_test(request: HttpRequest) -> HttpResponse:
    portal = _portal(request)
    if selectors.settings_get(portal=portal)["key_masked"] == "":
        with translation.override(_lang(request, portal)):
            # Unitalk is not asked at all: say so, not "Unitalk did not accept".
            message = _("Enter your Unitalk API key and save it first.")
        return JsonResponse({"errors": {"api_key": message}, "error": message}, status=400)
    job = services.connection_test_enqueue(portal=portal)
    return JsonResponse({"job": job.pk}, status=202)


@require_POST
@auth.page_token_required(admin=True)
def operators_sync(request: HttpRequest) -> HttpResponse:
    """Auto-match users and lines now (the same job beat runs hourly)."""
    from integration import jobs
    from integration.unitalk import services as unitalk_services

    portal = _portal(request)
    job = jobs.job_enqueue(
        kind=unitalk_services.KIND_OPERATORS_SYNC, portal=portal, subject=f"portal:{portal.pk}"
    )
    return JsonResponse({"job": job.pk}, status=202)


@require_GET
@auth.page_token_required(admin=True)
def operator_rows(request: HttpRequest) -> HttpResponse:
    """The mapping table's rows as HTML, to redraw it after a sync or a manual mapping."""
    portal = _portal(request)
    with translation.override(_lang(request, portal)):
        html = render_to_string(
            "pages/_mapping_rows.html",
            {
                "mappings": selectors.settings_get(portal=portal)["mappings"],
                "users": services.users_directory(portal=portal) or {},
            },
        )
    return JsonResponse({"html": html})


@require_POST
@auth.page_token_required(admin=True)
def operator_map(request: HttpRequest) -> HttpResponse:
    """Map a user to a line by hand (`remove: true` removes the user's row).

    A mapping that takes a line from another user, or moves this user off their line, answers
    409 with what would change, unless the page sends `confirm: true` after asking.
    """
    from integration.unitalk import mapping as mapping_rules
    from integration.unitalk import services as unitalk_services

    portal = _portal(request)
    data = _body(request)
    known = services.users_directory(portal=portal)
    with translation.override(_lang(request, portal)):
        user, line, errors = _mapping_fields(data, known, remove=bool(data.get("remove")))
        if errors:
            return JsonResponse({"errors": errors}, status=400)
        if data.get("remove"):
            unitalk_services.operator_unmap(portal=portal, bitrix_user_id=user)
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
    mapping = unitalk_services.operator_map_manual(portal=portal, bitrix_user_id=user, line=line)
    return JsonResponse({"user_id": mapping.bitrix_user_id, "line": mapping.line})


def _mapping_fields(
    data: dict[str, Any], known: dict[int, str] | None, *, remove: bool
) -> tuple[int, str, dict[str, str]]:
    """(user, line, errors) of a manual mapping, each error the one that is true."""
    errors: dict[str, str] = {}
    raw_user = str(data.get("user_id") or "").strip()
    line = str(data.get("line") or "").strip()
    user = int(raw_user) if raw_user.isdigit() and len(raw_user) < 10 else 0
    if not raw_user:
        errors["user_id"] = _("Enter the Bitrix24 user ID.")
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


@require_POST
@auth.page_token_required(admin=True)
def problem_dismiss(request: HttpRequest, notification_id: str) -> HttpResponse:
    """An admin closes a banner by hand (it comes back if the problem is raised again)."""
    from integration.core import alerts
    from integration.models import Notification

    portal = _portal(request)
    row = Notification.objects.filter(
        portal=portal, pk=_id(notification_id, "notification_id")
    ).first()
    if row is None:
        return _not_found()
    alerts.notification_resolve(portal=portal, tag=row.tag)
    return JsonResponse({"resolved": True})


@require_GET
@auth.page_token_required
def job_status(request: HttpRequest, job_id: str) -> HttpResponse:
    data = selectors.job_status_get(portal=_portal(request), job_id=_id(job_id, "job_id"))
    return JsonResponse(data) if data is not None else _not_found()


@require_GET
@auth.page_token_required
def call_card(request: HttpRequest) -> HttpResponse:
    call_id = request.GET.get("call_id", "")[:128]
    data = selectors.call_card_get(portal=_portal(request), bitrix_call_id=call_id)
    return JsonResponse({"call": data})


@require_GET
@auth.page_token_required
def crm_calls(request: HttpRequest) -> HttpResponse:
    entity_id = inputs.parse_int_or_none(request.GET.get("id"), field="id") or 0
    calls = selectors.crm_calls_list(
        portal=_portal(request),
        entity_type=request.GET.get("type", "").upper()[:64],
        entity_id=entity_id,
    )
    return JsonResponse({"calls": calls})
