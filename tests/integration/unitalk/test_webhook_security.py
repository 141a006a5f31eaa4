"""The webhook door under hostile input (issue 11): odd digits, deep JSON, wrong-secret floods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from integration.unitalk.models import UnitalkEvent

from .conftest import payload

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def url(connection):
    return f"/unitalk/webhook/{connection.webhook_secret}/"


def post(client, url, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **extra)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secondsTalk", "²"),
        ("secondsTalk", "9" * 5000),
        ("dbid", "²"),
        ("dbid", "1" * 25),
        ("cause", "٣"),
        ("cause", "9" * 5000),
    ],
)
def test_odd_digits_in_webhook_fields_are_400_naming_the_field(client, url, field, value):
    body = payload("call_end_in")
    body["call"][field] = value

    response = post(client, url, body)

    assert response.status_code == 400
    assert response.json()["field"] == f"call.{field}"
    assert not UnitalkEvent.objects.exists()


def test_deeply_nested_json_is_400_not_a_recursion_error(client, url):
    response = post(client, url, "[" * 2000)

    assert response.status_code == 400
    assert response.json() == {"error": "body is nested deeper than 32 levels", "field": "body"}
    assert not UnitalkEvent.objects.exists()


def test_deep_nesting_inside_strings_is_not_counted(client, url):
    body = payload("call_new_in")
    body["call"]["lastGroupName"] = "[" * 200

    assert post(client, url, body).status_code == 200


def test_wrong_secrets_are_throttled_per_client_but_right_secrets_never(client, url, settings):
    # given: a small budget of wrong-secret answers, and two clients (unique per test run)
    settings.UNITALK_WEBHOOK_REFUSALS_BURST = 3
    settings.UNITALK_WEBHOOK_REFUSALS_PER_S = 0.01
    prober = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    bystander = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.8"
    wrong = "/unitalk/webhook/guess-0123456789/"
    # when
    statuses = [
        post(client, wrong, payload("call_new_in"), REMOTE_ADDR=prober).status_code
        for _ in range(5)
    ]
    throttled = post(client, wrong, payload("call_new_in"), REMOTE_ADDR=prober)
    delivery = post(client, url, payload("call_new_in"), REMOTE_ADDR=prober)
    other = post(client, wrong, payload("call_new_in"), REMOTE_ADDR=bystander)
    # then
    assert statuses == [404, 404, 404, 429, 429]
    assert int(throttled["Retry-After"]) >= 1
    assert delivery.status_code == 200
    assert other.status_code == 404


#: Another web process answering wrong secrets: the door's own refusal path, run outside this
#: process with the same settings (no database needed: a refusal never reads a row).
OTHER_PROCESS = textwrap.dedent(
    """
    import os, sys, django
    django.setup()
    from django.conf import settings
    from django.test import RequestFactory
    from integration.unitalk.webhooks import _wrong_secret
    settings.REDIS_URL = os.environ["FLOOD_REDIS_URL"]
    settings.RATELIMIT_DIR = os.environ["FLOOD_RATELIMIT_DIR"]
    settings.UNITALK_WEBHOOK_REFUSALS_BURST = 3
    settings.UNITALK_WEBHOOK_REFUSALS_PER_S = 0.01
    request = RequestFactory().post("/unitalk/webhook/guess/", REMOTE_ADDR=sys.argv[1])
    print(" ".join(str(_wrong_secret(request).status_code) for _ in range(int(sys.argv[2]))))
    """
)


@pytest.mark.parametrize("store", ["redis", "files"])
def test_the_wrong_secret_budget_is_shared_by_every_web_process(
    client, url, settings, tmp_path, store
):
    # given: one budget of 3 refusals per client, with Redis or (one machine) file locks
    if store == "redis" and not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    if store == "files":
        settings.REDIS_URL = ""
    settings.RATELIMIT_DIR = tmp_path / "shared-ratelimit"
    settings.UNITALK_WEBHOOK_REFUSALS_BURST = 3
    settings.UNITALK_WEBHOOK_REFUSALS_PER_S = 0.01
    prober = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
        "DJANGO_ENV_FILE": str(ROOT / "tests" / "test.env"),
        "FLOOD_REDIS_URL": settings.REDIS_URL,
        "FLOOD_RATELIMIT_DIR": str(settings.RATELIMIT_DIR),
    }
    # when: another process spends the whole budget on wrong secrets ...
    other = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, prober, "3"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr[-2000:]
    # ... then the same client tries here, and a right secret comes from it too
    here = post(client, "/unitalk/webhook/guess-0123456789/", {}, REMOTE_ADDR=prober)
    delivery = post(client, url, payload("call_new_in"), REMOTE_ADDR=prober)
    # then: this process answers 429 from the shared budget; the delivery is never limited
    assert other.stdout.split() == ["404", "404", "404"]
    assert here.status_code == 429
    assert delivery.status_code == 200


def test_correct_deliveries_do_not_touch_the_limiter(client, url, monkeypatch):
    from integration.core import ratelimit

    def boom(*args, **kwargs):
        raise AssertionError("the limiter was consulted for a right secret")

    monkeypatch.setattr(ratelimit, "reserve", boom)

    assert post(client, url, payload("call_new_in")).status_code == 200


def test_limiter_failure_still_answers_404(client, monkeypatch):
    from integration.core import ratelimit

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit, "reserve", down)

    assert post(client, "/unitalk/webhook/nope-nope-nope/", {}).status_code == 404


def test_client_ip_comes_from_the_trusted_proxy_header_only_when_configured(rf, settings):
    from integration.unitalk.webhooks import client_ip

    request = rf.post("/", HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2", REMOTE_ADDR="9.9.9.9")
    assert client_ip(request) == "9.9.9.9"
    settings.UNITALK_WEBHOOK_CLIENT_IP_HEADER = "X-Forwarded-For"
    assert client_ip(request) == "2.2.2.2"
