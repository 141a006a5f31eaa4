"""The main app page and the placement door: minimal shells (the real pages come later).

Both are opened by Bitrix24 with a form POST into an iframe; `auth.frame_entry` authenticates
the POST (AUTH_ID on the portal's REST), issues the page token and allows framing by that
portal only.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from bitrixapp import auth


def _context(request: HttpRequest) -> dict[str, object]:
    return {
        "identity": request.bitrix,  # type: ignore[attr-defined]
        "portal": request.bitrix_portal,  # type: ignore[attr-defined]
        "page_token": request.bitrix_page_token,  # type: ignore[attr-defined]
        "bx24_js_url": settings.BITRIX24_JS_URL,
    }


@auth.frame_entry
def app_page(request: HttpRequest) -> HttpResponse:
    return render(request, "bitrix/app.html", _context(request))


@auth.frame_entry
def placement(request: HttpRequest) -> HttpResponse:
    try:
        options = json.loads(request.POST.get("PLACEMENT_OPTIONS") or "{}")
    except ValueError:
        options = {}
    context = _context(request) | {
        "placement": request.POST.get("PLACEMENT", "")[:64],
        "options": options if isinstance(options, dict) else {},
    }
    return render(request, "bitrix/placement.html", context)
