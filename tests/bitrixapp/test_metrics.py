"""/metrics: protected, and its counts are the ones that happened (rows and process counters)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from integration.core import http
from integration.core.errors import TransientError
from integration.models import Job, JobAttempt

pytestmark = [pytest.mark.django_db]

TOKEN = "metrics-token-0123456789"


def scrape(client, **headers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_off_without_a_token_or_allow_list(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = "", []
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_bearer_token(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = TOKEN, []
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_an_allowed_network_needs_no_token_and_others_do(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW_IPS = TOKEN, ["10.0.0.0/8", "127.0.0.1"]
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 401


def test_jobs_attempts_and_click_to_call_latency_come_from_the_rows(client, settings):
    settings.METRICS_ALLOW_IPS = ["127.0.0.1"]
    now = timezone.now()
    dial = Job.objects.create(kind="call.dial", idempotency_key="d1", state=Job.State.SUCCEEDED)
    Job.objects.filter(pk=dial.pk).update(created_at=now - timedelta(seconds=1.5), finished_at=now)
    dead = Job.objects.create(kind="call.sync", idempotency_key="s1", state=Job.State.DEAD)
    JobAttempt.objects.create(job=dial, number=1, outcome="failed", decision="retry")
    JobAttempt.objects.create(job=dial, number=2, outcome="succeeded")
    JobAttempt.objects.create(job=dead, number=1, outcome="abandoned", decision="retry")
    Job.objects.create(
        kind="call.sync", idempotency_key="s2", next_attempt_at=now - timedelta(seconds=90)
    )

    samples = scrape(client)

    assert value(samples, "unitalk_app_jobs", kind="call.dial", state="succeeded") == 1
    assert value(samples, "unitalk_app_jobs", kind="call.sync", state="dead") == 1
    attempts = "unitalk_app_job_attempts_total"
    assert value(samples, attempts, kind="call.dial", outcome="failed", decision="retry") == 1
    assert value(samples, attempts, kind="call.sync", outcome="abandoned", decision="retry") == 1
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    assert value(samples, "unitalk_app_queue_due_jobs", queue=queue) == 1
    assert 90 <= value(samples, "unitalk_app_queue_oldest_due_seconds", queue=queue) < 120
    click = "unitalk_app_click_to_call_seconds"
    assert value(samples, f"{click}_count") == 1
    assert value(samples, f"{click}_bucket", le="1.0") == 0
    assert value(samples, f"{click}_bucket", le="2.0") == 1
    assert value(samples, f"{click}_sum") == pytest.approx(1.5, abs=0.01)
    assert value(samples, "unitalk_app_portals", state="active") == 0


@responses.activate
def test_provider_answers_are_counted_per_provider_and_status(client, settings):
    settings.METRICS_ALLOW_IPS = ["127.0.0.1"]
    before = scrape(client)
    responses.post("https://portal.example/rest/x", status=503)
    responses.post("https://portal.example/rest/y", body=requests.ConnectionError("reset"))
    http.request("POST", "https://portal.example/rest/x", service="bitrix")
    http.request("POST", "https://portal.example/rest/x", service="bitrix")
    with pytest.raises(TransientError):
        http.request("POST", "https://portal.example/rest/y", service="bitrix")

    after = scrape(client)

    name = "unitalk_app_provider_requests_total"
    for status, added in (("503", 2), ("error", 1)):
        grew = value(after, name, provider="bitrix", status=status)
        assert grew - value(before, name, provider="bitrix", status=status) == added
    answers = "unitalk_app_http_answers_total"
    assert value(after, answers, route="metrics", status="200") >= 1
