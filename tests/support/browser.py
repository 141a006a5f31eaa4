"""Shared pieces of the browser tests: Debian's Chromium, the sandbox, the app as processes.

The sandbox (portal, OAuth server, Unitalk) runs in the test process on free ports; the app
runs as gunicorn + a Celery worker + beat (tests/support/stack.py) pointed at it. Screenshots
go to var/screenshots/ (a test run leaves the tree clean); `make screenshots` sets
SCREENSHOT_DIR=docs/screenshots to refresh the committed ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from sandbox import server as sandbox_server
from tests.support.stack import Stack, app_stack
from tests.support.world import sandbox_env, sandbox_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "var" / "screenshots")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (Playwright drives it; it downloads no browser of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            # ORM calls made while Playwright's loop runs get their own connection (asgiref
            # context); close it here, or the test database cannot be dropped afterwards.
            connections.close_all()
            chromium.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def sandbox(settings) -> Iterator[Any]:
    handle = sandbox_server.start(app_url="http://127.0.0.1:1", state_path=None)
    sandbox_settings(settings, handle)
    yield handle
    handle.stop()


@pytest.fixture
def stack(sandbox, settings, tmp_path, monkeypatch) -> Iterator[Stack]:
    with app_stack(tmp_path, env=sandbox_env(sandbox), web=True, worker=True, beat=True) as running:
        # The sandbox portal frames whatever app URL it is told; the stack picked its port.
        sandbox.world.settings.app_url = running.base_url
        settings.APP_BASE_URL = running.base_url
        # Playwright's sync API runs an event loop in this thread; the ORM calls made here
        # between browser steps are plain synchronous test code.
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield running
