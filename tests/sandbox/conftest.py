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
