"""The one place that speaks HTTP to the outside world.

Every outbound request goes through `request()`: pooled connections, connect and read timeouts,
our User-Agent, TLS verification always on, no automatic redirects (a redirect is a fact the
caller must see: Bitrix24 answers a moved portal with 302). Network failures come back as
`TransientError`, so callers never catch `requests` exceptions themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from integration.core import metrics
from integration.core.errors import TransientError

logger = logging.getLogger(__name__)

Response = requests.Response

_local = threading.local()


def _session() -> requests.Session:
    # One pooled session per thread: requests.Session is not documented as thread-safe.
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = settings.HTTP_USER_AGENT
        session.trust_env = False  # no surprise proxies or netrc credentials
        _local.session = session
    return session


def request(
    method: str,
    url: str,
    *,
    service: str,
    params: Mapping[str, Any] | None = None,
    data: Any = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] | None = None,
    stream: bool = False,
) -> Response:
    """Send one request; raise `TransientError` when no HTTP answer came back.

    The response is returned whatever its status: mapping statuses and envelopes to errors is
    the job of each service's client, which knows the provider's conventions.
    """
    started = time.monotonic()
    status = "error"
    try:
        response = _session().request(
            method,
            url,
            params=params,
            data=data,
            json=json,
            headers=dict(headers or {}),
            timeout=timeout or (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT),
            allow_redirects=False,
            stream=stream,
        )
        status = str(response.status_code)
        return response
    except requests.Timeout as exc:
        raise TransientError(f"{service}: timed out", service=service) from exc
    except requests.ConnectionError as exc:
        raise TransientError(
            f"{service}: connection failed ({type(exc).__name__})", service=service
        ) from exc
    except requests.RequestException as exc:
        raise TransientError(
            f"{service}: request failed ({type(exc).__name__})", service=service
        ) from exc
    finally:
        # Every request to a provider is counted here, the one place they all pass.
        metrics.provider_requests.labels(service, status).inc()
        metrics.provider_request_seconds.labels(service).observe(time.monotonic() - started)


def close() -> None:
    """Drop this thread's pooled connections (tests, worker shutdown)."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is not None:
        session.close()
        _local.session = None
