"""Which hosts may be a Bitrix24 portal (docs/security.md).

A forged install or event could name any `client_endpoint`; we would then send tokens (and, on
refresh, talk about them) to that host. Only hosts matching BITRIX24_PORTAL_HOSTS are accepted.
"""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit

from django.conf import settings


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
