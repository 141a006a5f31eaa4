"""Framing and script-source headers for app pages (docs/security.md).

Which hosts may be a portal is decided next to the Bitrix24 client, in integration/bitrix/hosts.py.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse

from integration.bitrix.hosts import portal_origin


def nonce_new() -> str:
    """A fresh CSP nonce for one response's inline scripts."""
    return secrets.token_urlsafe(18)


def script_sources(client_endpoint: str) -> str:
    """Where a framed page may load scripts from: itself, BX24.js's host, the portal."""
    parts = urlsplit(settings.BITRIX24_JS_URL)
    sources = ["'self'"]
    if parts.netloc:
        # "//api.bitrix24.com/api/v1/" (scheme-relative) becomes a host source.
        sources.append(f"{parts.scheme}://{parts.netloc}" if parts.scheme else parts.netloc)
    sources.append(portal_origin(client_endpoint))
    return " ".join(dict.fromkeys(sources))


def frame_allow(
    response: HttpResponse, *, client_endpoint: str, nonce: str | None = None
) -> HttpResponse:
    """Let exactly this portal frame the response; every other page stays X-Frame-Options DENY.

    Framed pages carry the page token (and, on settings, the webhook secret): no caching, and a
    CSP that lets only our own, BX24.js's and the portal's scripts run, plus inline scripts
    carrying this response's nonce (docs/security.md).
    """
    origin = portal_origin(client_endpoint)
    scripts = script_sources(client_endpoint) + (f" 'nonce-{nonce}'" if nonce else "")
    response["Content-Security-Policy"] = (
        f"frame-ancestors 'self' {origin}; script-src {scripts}; object-src 'none'; base-uri 'self'"
    )
    response["Cache-Control"] = "no-store"
    response.xframe_options_exempt = True
    return response
