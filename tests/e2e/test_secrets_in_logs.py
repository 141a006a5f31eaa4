"""No secret in any log line of any process (issue 11 item 3).

The app runs as production runs it (gunicorn with gunicorn.conf.py and its access log, a Celery
worker, beat) against the sandbox. The test drives deliveries, rejections and failures, then
searches every captured log stream for every secret the run handled: the webhook secret, the
Unitalk API key, access, refresh and application tokens, users' AUTH_IDs, the client secret.
"""

from __future__ import annotations

import json

import pytest
import requests

from bitrixapp.models import Portal
from integration.calls.models import CallSync
from integration.unitalk.models import UnitalkConnection
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until
from tests.support.world import KEY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLIENT_SECRET = "sandbox-client-secret"


def _portal_secrets(portal: Portal) -> set[str]:
    row = Portal.objects.get(pk=portal.pk)
    return {row.application_token, row.access_token, row.refresh_token}


def test_no_secret_reaches_any_log_stream(tmp_path, settings):
    secrets: set[str] = {KEY, CLIENT_SECRET}
    env = {"UNITALK_WEBHOOK_REFUSALS_BURST": "5", "UNITALK_WEBHOOK_REFUSALS_PER_S": "0.1"}
    with call_world(tmp_path, settings, env=env) as world:
        portal = world.portal
        base = world.stack.base_url
        member = portal.member_id
        connection = UnitalkConnection.objects.get(portal=portal)
        hook = f"{base}/unitalk/webhook/{connection.webhook_secret}/"
        secrets |= {connection.webhook_secret} | _portal_secrets(portal)

        # an administrator opens the app (AUTH_ID in the body), then asks with tokens in URLs
        anna = world.bx(f"portals/{member}/tokens", {"user_id": "1"})
        oleg = world.bx(f"portals/{member}/tokens", {"user_id": "2"})
        secrets |= {anna["access_token"], anna["refresh_token"]}
        secrets |= {oleg["access_token"], oleg["refresh_token"]}
        entry = requests.post(
            f"{base}/bitrix/app/?DOMAIN={portal.domain}&PROTOCOL=0&LANG=en",
            data={"member_id": member, "AUTH_ID": anna["access_token"]},
            timeout=30,
        )
        assert entry.status_code == 200
        probes = [
            requests.get(f"{base}/healthz?auth={anna['access_token']}", timeout=30),
            requests.get(f"{base}/bitrix/app/?AUTH_ID={oleg['access_token']}", timeout=30),
        ]
        assert [p.status_code for p in probes] == [200, 405]

        # rejections: a non-admin's install, bad webhook bodies and headers, a secret flood
        takeover = requests.post(
            f"{base}/bitrix/events/",
            data={
                "event": "ONAPPINSTALL",
                "auth[member_id]": member,
                "auth[access_token]": oleg["access_token"],
                "auth[refresh_token]": oleg["refresh_token"],
                "auth[application_token]": "attacker-token-000",
                "auth[client_endpoint]": portal.client_endpoint,
            },
            timeout=30,
        )
        assert takeover.status_code == 403
        bad_body = requests.post(
            hook, data="{not json", headers={"Content-Type": "application/json"}, timeout=30
        )
        deep = requests.post(
            hook, data="[" * 2000, headers={"Content-Type": "application/json"}, timeout=30
        )
        bad_header = requests.post(
            hook, json={}, headers={"X-Unitalk-Secret": "wrong-header-secret"}, timeout=30
        )
        assert (bad_body.status_code, deep.status_code, bad_header.status_code) == (400, 400, 404)
        flood = [
            requests.post(f"{base}/unitalk/webhook/guess{i:04d}abcdefgh/", json={}, timeout=30)
            for i in range(8)
        ]
        assert {r.status_code for r in flood} == {404, 429}

        # failures: Unitalk refuses the first dial attempts, the access token expires
        world.bx(f"portals/{member}/expire")
        world.fault("unitalk", "500")
        call = world.bx(
            f"portals/{member}/click-to-call", {"user_id": "1", "phone": "+380501230000"}
        )
        wait_until(
            lambda: "job attempt failed" in world.stack.log("worker"),
            timeout=60,
            message="a failed dial attempt in the worker log",
        )
        world.fault("unitalk", "500", rate=0)
        wait_until(
            lambda: CallSync.objects.filter(
                bitrix_call_id=call["call"]["CALL_ID"], stage=CallSync.Stage.RECORDED
            ).exists(),
            timeout=120,
            message="the call delivered by webhooks, finished and recorded",
        )
        secrets |= _portal_secrets(portal)
        logs = {name: world.stack.log(name) for name in ("web", "worker", "beat")}

    # the streams are the real ones: access lines, refusals, retries and refreshes are in them
    access = [line for line in logs["web"].splitlines() if '"logger": "gunicorn.access"' in line]
    assert sum("/unitalk/webhook/" in line for line in access) >= 3
    assert any('"status": 429' in line for line in access)
    assert "Bad Request: /unitalk/webhook/****" in logs["web"]
    assert "install refused: not an administrator" in logs["web"]
    assert "access token refreshed" in logs["worker"]
    assert "beat: Starting" in logs["beat"]
    secrets = {s for s in secrets if s}
    assert len(secrets) >= 10
    leaks = {
        name: sorted(s[-6:] for s in secrets if s in text)  # tails only: no secret in the report
        for name, text in logs.items()
    }
    assert leaks == {"web": [], "worker": [], "beat": []}, json.dumps(leaks)
