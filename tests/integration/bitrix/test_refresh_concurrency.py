"""16 workers (8 threads + 8 processes) hit an expired token: exactly one refresh, no invalid_grant.

A tiny stdlib HTTP server plays portal and OAuth server (responses cannot cross processes): it
expires the first access token, rotates single-use refresh tokens and revokes the old access token
on refresh, and counts refresh requests. Runs on SQLite and on PostgreSQL (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection, connections
from django.utils import timezone

from bitrixapp.models import Portal
from integration.bitrix import client
from tests.integration.bitrix.fixtures import new_member_id
from tests.support.factories import PortalFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]
THREADS = 8
PROCESSES = 8


class FakeBitrix:
    """Portal REST `profile` + OAuth `/oauth/token/` with Bitrix24's rotation rules."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.valid_access = "access-0"
        self.access_expired = True  # the stored token has just expired
        self.valid_refresh = "refresh-0"
        self.revoked: set[str] = set()
        self.refreshes = 0
        self.invalid_grants = 0

    def token(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        time.sleep(0.2)  # a slow OAuth server widens any race window
        with self.lock:
            self.refreshes += 1
            if (
                query.get("refresh_token") != self.valid_refresh
                or query.get("client_secret") != "s3cret-client"
            ):
                self.invalid_grants += 1
                return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            self.revoked.add(self.valid_access)
            self.generation += 1
            self.valid_access = f"access-{self.generation}"
            self.valid_refresh = f"refresh-{self.generation}"
            self.access_expired = False
            return 200, {
                "access_token": self.valid_access,
                "refresh_token": self.valid_refresh,
                "expires_in": 3600,
                "member_id": "m",
            }

    def profile(self, token: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if token == self.valid_access and not self.access_expired:
                return 200, {"result": {"ID": "1", "ADMIN": True}, "time": {}}
            if token == self.valid_access or token not in self.revoked:
                return 401, {
                    "error": "expired_token",
                    "error_description": "The access token provided has expired",
                }
            return 401, {
                "error": "invalid_token",
                "error_description": "The access token provided is invalid",
            }


def serve(fake: FakeBitrix) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/oauth/token/":
                self.answer(*fake.token(query))
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.startswith("/rest/profile"):
                self.answer(*fake.profile(str(body.get("auth", ""))))
            else:
                self.answer(404, {"error": "ERROR_METHOD_NOT_FOUND"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def database_url() -> str:
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


@pytest.fixture
def fake_server():
    fake = FakeBitrix()
    server = serve(fake)
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_expired_token_refreshes_once_under_concurrency(fake_server, settings, tmp_path):
    # given: a portal whose stored access token the portal now calls expired
    fake, url = fake_server
    settings.BITRIX24_OAUTH_SERVER = url
    settings.BITRIX24_PORTAL_HOSTS = ["127.0.0.1"]
    portal = PortalFactory(
        member_id=new_member_id(),
        domain=urlsplit(url).netloc,
        client_endpoint=f"{url}/rest/",
        status=Portal.Status.ACTIVE,
        application_token="t",
        access_token="access-0",
        refresh_token="refresh-0",
        access_expires_at=timezone.now() + timedelta(minutes=30),
    )
    go = tmp_path / "go"
    env = {
        **os.environ,
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": database_url(),
        "BITRIX24_OAUTH_SERVER": url,
        "BITRIX24_CLIENT_ID": settings.BITRIX24_CLIENT_ID,
        "BITRIX24_CLIENT_SECRET": settings.BITRIX24_CLIENT_SECRET,
        "BITRIX24_PORTAL_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.bitrix.refresh_worker",
                str(portal.pk),
                str(go),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    ready_lines = [p.stdout.readline() for p in procs]  # type: ignore[union-attr]
    assert all('"ready"' in line for line in ready_lines), ready_lines

    start = threading.Event()
    outcomes: list[str] = []

    def thread_worker() -> None:
        mine = Portal.objects.get(pk=portal.pk)
        start.wait()
        try:
            client.call(mine, "profile")
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=thread_worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    # when: everyone starts at once
    go.touch()
    start.set()
    for t in threads:
        t.join(timeout=60)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        results.append(lines[-1] if lines else {"ok": False, "error": err[-2000:]})
    wait_until(lambda: len(outcomes) == THREADS, timeout=10, message="all threads finished")

    # then
    assert outcomes == ["ok"] * THREADS
    assert [r.get("ok") for r in results] == [True] * PROCESSES, results
    assert fake.refreshes == 1
    assert fake.invalid_grants == 0
    stored = Portal.objects.get(pk=portal.pk)
    assert (stored.access_token, stored.refresh_token) == ("access-1", "refresh-1")
    assert stored.status == Portal.Status.ACTIVE
