"""Fixtures of the Bitrix24 simulator's tests: REST calls with a portal's token, seeded leads,
and the sandbox behind TLS for clients that insist on https (b24pysdk)."""

from __future__ import annotations

from typing import Any

import pytest
import requests


@pytest.fixture
def rest(portal, http):
    """Call a portal REST method with the portal's access token; returns the Response."""

    def call(method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        body = {"auth": portal["access_token"], **(params or {})}
        return http.post(f"{portal['client_endpoint']}{method}", json=body, **kwargs)

    return call


@pytest.fixture
def seed_leads(sandbox, http):
    """Create `count` leads with distinct phones through the control API; returns their IDs."""

    def seed(portal: dict[str, Any], count: int) -> list[int]:
        url = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/lead"
        return [
            int(http.post(url, json={"phone": f"38050{i:07d}", "title": f"L{i}"}).json()["ID"])
            for i in range(count)
        ]

    return seed


@pytest.fixture
def tls(sandbox, tmp_path, monkeypatch):
    """The sandbox behind TLS (see tls_relay): its portal as https://127.0.0.1:<port> and the
    OAuth server as https://oauth.bitrix24.tech, for requests-based clients in this process."""
    from tests.sandbox.bitrix.tls_relay import TlsRelay

    bitrix_port = int(sandbox.bitrix_url.rsplit(":", 1)[1])
    oauth_port = int(sandbox.oauth_url.rsplit(":", 1)[1])
    relay = TlsRelay(
        tmp_path,
        {f"127.0.0.1:{bitrix_port}": bitrix_port, "oauth.bitrix24.tech:443": oauth_port},
    )
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", relay.url)
    monkeypatch.setenv("https_proxy", relay.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(relay.ca_path))
    yield relay
    relay.stop()
