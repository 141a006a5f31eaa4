"""Fixtures: the sandbox servers in-process on free ports, a portal, and an HTTP receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import server


@dataclass
class Captured:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny local HTTP server that records every request (stands in for the app)."""

    url: str
    requests: list[Captured] = field(default_factory=list)

    def to(self, path: str) -> list[Captured]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    captured: list[Captured] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            split = urlsplit(self.path)
            captured.append(
                Captured(
                    split.path,
                    parse_qs(split.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            body = b"<html><body>installed</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{httpd.server_address[1]}", captured)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sandbox(tmp_path, receiver) -> Iterator[server.Handle]:
    handle = server.start(app_url=receiver.url, state_path=tmp_path / "state.json")
    yield handle
    handle.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def portal(sandbox, http) -> dict[str, Any]:
    response = http.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={})
    assert response.status_code == 201
    return response.json()


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
    from tests.sandbox.tls_relay import TlsRelay

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
