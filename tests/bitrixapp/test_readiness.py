"""Readiness (/readyz): every part named, 503 naming the part that fails.

Worker and beat liveness are proved with real processes (tests/support/stack.py) whose
heartbeats stop when they are killed; Redis down and an old backlog with heartbeats written
by this process, so that exactly one part fails.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from bitrixapp import heartbeats
from integration.backlog import known_queues
from integration.models import Job
from tests.support.stack import app_stack, free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

PARTS = ["database", "broker", "redis", "worker", "beat", "backlog"]


@pytest.fixture
def fast_heartbeats(settings):
    settings.HEARTBEAT_INTERVAL_S = 0.5
    settings.READY_HEARTBEAT_MAX_AGE_S = 3.0
    return {"HEARTBEAT_INTERVAL_S": "0.5"}


def _beat_now() -> None:
    for queue in known_queues():
        heartbeats.heartbeat_write("worker", queue=queue)
    heartbeats.heartbeat_write("beat")


def _ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    return response.status_code, response.json()


@pytest.mark.e2e
def test_readyz_is_200_with_live_processes_then_names_the_worker_when_it_is_killed(
    client, tmp_path, settings, fast_heartbeats
):
    with app_stack(tmp_path, web=False, env=fast_heartbeats) as stack:
        settings.CELERY_TASK_DEFAULT_QUEUE = stack.env["CELERY_TASK_DEFAULT_QUEUE"]
        _, body = wait_until(
            lambda: (r := _ready(client))[0] == 200 and r, timeout=30, message="ready"
        )
        assert list(body["checks"]) == PARTS
        assert body["checks"]["worker"]["queues"][settings.CELERY_TASK_DEFAULT_QUEUE]["ok"]

        os.killpg(stack.procs["worker"].pid, signal.SIGKILL)
        stack.procs["worker"].wait()

        _, body = wait_until(
            lambda: (r := _ready(client))[0] == 503 and r, timeout=30, message="503"
        )
        assert body["failed"] == ["worker"]
        queue = body["checks"]["worker"]["queues"][settings.CELERY_TASK_DEFAULT_QUEUE]
        assert "heartbeat" in queue["error"]


@pytest.mark.e2e
def test_readyz_names_beat_when_beat_is_gone(client, tmp_path, settings, fast_heartbeats):
    with app_stack(tmp_path, web=False, env=fast_heartbeats) as stack:
        settings.CELERY_TASK_DEFAULT_QUEUE = stack.env["CELERY_TASK_DEFAULT_QUEUE"]
        wait_until(lambda: _ready(client)[0] == 200, timeout=30, message="ready")

        stack.procs["beat"].terminate()
        stack.procs["beat"].wait()

        _, body = wait_until(
            lambda: (r := _ready(client))[0] == 503 and r, timeout=30, message="503"
        )
        assert body["failed"] == ["beat"]
        assert body["checks"]["beat"]["age_s"] > 3.0


def test_readyz_names_redis_when_it_does_not_answer(client, settings):
    _beat_now()
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    status, body = _ready(client)

    assert status == 503
    assert body["failed"] == ["redis"]
    assert "Connection" in body["checks"]["redis"]["error"]


def test_readyz_names_the_backlog_and_its_queue_when_the_oldest_due_job_is_too_old(
    client, settings
):
    settings.READY_BACKLOG_MAX_AGE_S = 60
    _beat_now()
    now = timezone.now()
    for minutes in (10, 2):
        Job.objects.create(
            kind="notification.deliver",
            idempotency_key=f"old-{minutes}",
            next_attempt_at=now - timedelta(minutes=minutes),
        )
    status, body = _ready(client)

    assert status == 503
    assert body["failed"] == ["backlog"]
    lane = body["checks"]["backlog"]["queues"][settings.CELERY_TASK_DEFAULT_QUEUE]
    assert lane["due"] == 2
    assert 600 <= lane["oldest_due_s"] < 700
    assert not lane["ok"]


def test_readyz_is_200_when_the_backlog_is_young(client, settings):
    _beat_now()
    Job.objects.create(kind="notification.deliver", idempotency_key="young")

    status, body = _ready(client)

    assert status == 200, body
    assert body["checks"]["backlog"]["ok"]
