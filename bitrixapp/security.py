"""Which hosts may be a Bitrix24 portal, and framing headers for app pages.

A forged install or event could name any `client_endpoint`; we would then send tokens (and, on
refresh, talk about them) to that host. Only hosts matching BITRIX24_PORTAL_HOSTS are accepted.
"""

from __future__ import annotations

import fnmatch
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse


def host_allowed(host: str) -> bool:
    """Is `host` (port ignored) one of BITRIX24_PORTAL_HOSTS (`*.bitrix24.com` style patterns)?"""
    name = (host or "").strip().lower()
    if not name:
        return False
    if name.startswith("["):  # IPv6 literal with port
        name = name.split("]", 1)[0] + "]"
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    for pattern in settings.BITRIX24_PORTAL_HOSTS:
        pattern = pattern.strip().lower()
        if not pattern:
            continue
        if pattern.startswith("*."):
            # "*.bitrix24.com" matches "x.bitrix24.com" but not "bitrix24.com.evil.io"
            if name.endswith(pattern[1:]) and fnmatch.fnmatchcase(name, pattern):
                return True
        elif name == pattern:
            return True
    return False


def endpoint_allowed(url: str) -> bool:
    parts = urlsplit(url or "")
    return parts.scheme in ("http", "https") and host_allowed(parts.hostname or "")


def portal_origin(client_endpoint: str) -> str:
    parts = urlsplit(client_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


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
