"""JSON actions of the call pages (page token, X-App-Token): live calls, the history, its CSV.

Doors only: parse, read, answer; every read is by the token's portal (docs/pages.md). Mounted
under /bitrix/actions/calls/ by bitrixapp/urls.py.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from bitrixapp import auth
from bitrixapp.models import Portal
from integration.calls import history, live
from integration.core import inputs


def _portal(request: HttpRequest) -> Portal:
    identity: auth.PageIdentity = request.bitrix  # type: ignore[attr-defined]
    return identity.portal


@require_GET
@auth.page_token_required
def calls_live(request: HttpRequest) -> HttpResponse:
    """The overview's "Calls now": rows as data and as HTML (the page swaps the table body)."""
    calls = live.calls_live(portal=_portal(request))
    with translation.override(auth.action_lang(request)):
        html = render_to_string("pages/_live_rows.html", {"calls": calls})
    return JsonResponse({"calls": calls, "html": html, "count": len(calls)})


def _filters(request: HttpRequest) -> history.HistoryFilters | JsonResponse:
    with translation.override(auth.action_lang(request)):
        try:
            return history.history_filters_parse(request.GET)
        except history.HistoryFiltersInvalid as exc:
            field, message = next(iter(exc.errors.items()))
            return JsonResponse(
                {"errors": exc.errors, "field": field, "error": message}, status=400
            )


@require_GET
@auth.page_token_required
def calls_history(request: HttpRequest) -> HttpResponse:
    """One page of the history; wrong filters answer 400 with a message per field."""
    filters = _filters(request)
    if isinstance(filters, JsonResponse):
        return filters
    page = inputs.parse_int_or_none(
        request.GET.get("page"), field="page", minimum=1, maximum=100_000
    )
    data = history.history_page_get(portal=_portal(request), filters=filters, page=page or 1)
    with translation.override(auth.action_lang(request)):
        data["html"] = render_to_string("pages/_history_rows.html", {"calls": data["calls"]})
        data["total_text"] = ngettext("%(n)d call", "%(n)d calls", data["total"]) % {
            "n": data["total"]
        }
    return JsonResponse(data)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to spreadsheets (CSV injection): names and
    # URLs come from other systems, so such text is quoted as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@require_GET
@auth.page_token_required
def calls_history_csv(request: HttpRequest) -> Any:
    """The filtered history as CSV, streamed row by row (any size, flat memory)."""
    filters = _filters(request)
    if isinstance(filters, JsonResponse):
        return filters
    writer = csv.writer(_Echo())
    rows = history.history_csv_rows(portal=_portal(request), filters=filters)

    def lines() -> Iterator[str]:
        for row in rows:
            yield writer.writerow([_cell(v) for v in row])

    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="calls-{stamp}.csv"'
    return response
