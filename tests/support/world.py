"""The app pointed at a running sandbox, and the sandbox driven from outside.

Used by the end-to-end tests, the browser tests and the benchmarks alike: `sandbox_env` is what
an app process needs in its environment to talk to the sandbox (`sandbox_settings` the same for
the test process), `World` installs a portal through the sandbox and plays Bitrix24's and
Unitalk's side, `ended_calls_seed` stores calls as the webhook worker does once CALL_END is
merged (a backlog to sync).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests

KEY = "SandboxKey01"
CLIENT_ID = "local.sandbox.app"
CLIENT_SECRET = "sandbox-client-secret"


def sandbox_env(handle: Any) -> dict[str, str]:
    """Environment that points an app process at the sandbox `handle` (sandbox.server.start)."""
    return {
        "BITRIX24_OAUTH_SERVER": handle.oauth_url,
        "BITRIX24_PORTAL_HOSTS": urlsplit(handle.bitrix_url).hostname or "127.0.0.1",
        "BITRIX24_CLIENT_ID": CLIENT_ID,
        "BITRIX24_CLIENT_SECRET": CLIENT_SECRET,
        "BITRIX24_JS_URL": f"{handle.bitrix_url}/bx24.js",
        "UNITALK_API_URL": f"{handle.unitalk_url}/api",
    }


def sandbox_settings(settings: Any, handle: Any) -> None:
    """The same as `sandbox_env`, applied to this process's settings (pytest-django fixture)."""
    env = sandbox_env(handle)
    for name, value in env.items():
        setattr(settings, name, value)
    settings.BITRIX24_PORTAL_HOSTS = [env["BITRIX24_PORTAL_HOSTS"]]


@dataclass
class World:
    """The sandbox seen from a test: control calls, faults, state, and a portal installed."""

    sandbox: Any
    stack: Any = None
    portal: Any = None

    def bx(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = requests.post(
            f"{self.sandbox.bitrix_url}/_sandbox/{path}", json=payload or {}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def ut(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = requests.post(
            f"{self.sandbox.unitalk_url}/_sandbox/{path}",
            json={"api_key": KEY, **(payload or {})},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def fault(self, server: str, kind: str, rate: float = 1.0, **extra: Any) -> None:
        base = self.sandbox.bitrix_url if server == "bitrix" else self.sandbox.unitalk_url
        requests.post(
            f"{base}/_sandbox/faults",
            json={"kind": kind, "rate": rate, "method": "*", **extra},
            timeout=10,
        ).raise_for_status()

    def portal_state(self) -> dict[str, Any]:
        assert self.portal is not None
        state = requests.get(f"{self.sandbox.bitrix_url}/_sandbox/state?log=0", timeout=30).json()
        return state["portals"][self.portal.member_id]

    def finished_by_external_id(self) -> Counter[str]:
        return Counter(
            str(f["EXTERNAL_CALL_ID"])
            for f in self.portal_state()["finished"].values()
            if f["EXTERNAL_CALL_ID"]
        )

    def install(self, *, timeout: float = 60) -> Any:
        """Install the app through the portal (the app's web and a worker must be running),
        connect Unitalk with the sandbox key, wire its webhook and map lines 101/102."""
        from bitrixapp.models import Portal, portal_options
        from integration.models import Job
        from integration.unitalk import services as unitalk_services
        from integration.unitalk.models import OperatorMapping
        from tests.support.waiting import wait_until

        creds = self.bx("portals")
        answer = self.bx(f"portals/{creds['member_id']}/install")
        assert answer["onappinstall"]["status"] == 200, answer
        wait_until(
            lambda: Job.objects.filter(kind="portal.install", state=Job.State.SUCCEEDED).exists(),
            timeout=timeout,
            message="the install job to bind events and the line",
        )
        self.bx(f"portals/{creds['member_id']}/install-finish")
        portal = Portal.objects.get(member_id=creds["member_id"])
        options = portal_options(portal)
        options.default_user_id = 1
        options.save()
        connection = unitalk_services.connection_create(portal=portal, api_key=KEY)
        self.ut(
            "webhooks",
            {
                "url": unitalk_services.connection_webhook_url(connection=connection),
                "replace": True,
            },
        )
        self.ut("settings", {"event_delay": 0.1, "talk_time": 4, "ring_time": 2})
        for user_id, line in ((1, "101"), (2, "102")):
            OperatorMapping.objects.update_or_create(
                portal=portal, bitrix_user_id=user_id, defaults={"line": line}
            )
        self.portal = portal
        return portal


def ended_calls_seed(
    *, portal: Any, count: int, prefix: str, started_at: datetime, line: str = "101"
) -> list[str]:
    """Store `count` answered inbound calls that had ended when the app first saw them (no CRM
    match, no recording: the register+finish path alone) and hand each its sync, as the
    webhook worker does once it merged CALL_END. One transaction; the jobs go out at commit.
    Returns their Unitalk call ids.
    """
    from django.db import transaction

    from integration.calls import services
    from integration.calls.models import Call

    ids = []
    with transaction.atomic():
        for i in range(count):
            call = Call.objects.create(
                portal=portal,
                unitalk_call_id=f"{prefix}{i}",
                direction=Call.Direction.IN,
                status=Call.Status.ENDED,
                state="ANSWER",
                ended=True,
                client_number=f"38067{i:07d}",
                operator_line=line,
                started_at=started_at + timedelta(seconds=i),
                talk_seconds=30,
                full_seconds=35,
            )
            services.call_changed(call=call, event="CALL_END")
            ids.append(call.unitalk_call_id)
    return ids
