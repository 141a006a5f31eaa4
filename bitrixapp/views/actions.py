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
    return auth.page_lang(request.headers.get(LANG_HEADER), fallback=portal.lang)


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
    portal = _portal(request)
    data = selectors.call_card_get(portal=portal, bitrix_call_id=call_id)
    if data is not None:
        with translation.override(_lang(request, portal)):
            data["steps_html"] = render_to_string("pages/_call_steps.html", {"live": data["live"]})
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
