"""Fixtures for the Unitalk side: a portal with a connection, payload samples, job running."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from integration import jobs
from integration.models import Job
from integration.unitalk import intake, selectors, services
from tests.support.factories import PortalFactory

PAYLOADS = Path(__file__).resolve().parents[2] / "payloads" / "unitalk"
API = "https://api.unitalk.test/api"


def payload(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((PAYLOADS / f"{name}.json").read_text()))


@pytest.fixture(autouse=True)
def _unitalk_settings(settings, tmp_path):
    settings.UNITALK_API_URL = API
    # Generous budget: tests must not wait for rate slots (a test of the budget sets its own).
    settings.UNITALK_RATE_BURST = 1000
    settings.UNITALK_RATE_PER_SECOND = 1000.0
    # Wrong-secret answers are throttled per client IP; tests of the throttle use their own.
    settings.UNITALK_WEBHOOK_REFUSALS_BURST = 1000
    settings.RATELIMIT_DIR = tmp_path / "ratelimit"
    settings.APP_BASE_URL = "https://app.example.com"
    selectors.webhook_target_cache_clear()


@pytest.fixture(autouse=True)
def kicks(monkeypatch):
    """Wake-ups of the job dispatcher by the webhook door (not published in tests)."""
    woken: list[int] = []
    monkeypatch.setattr(intake, "kick", lambda: woken.append(1))
    return woken


@pytest.fixture
def portal(db):
    return PortalFactory(domain="acme.bitrix24.ua")


@pytest.fixture
def api_key() -> str:
    # Unique per test: the rate budget and parking are keyed by the key (shared Redis in CI).
    return "K" + uuid.uuid4().hex[:11]


@pytest.fixture
def connection(portal, api_key):
    return services.connection_create(portal=portal, api_key=api_key)


def run_jobs(*, max_rounds: int = 20) -> list[Job]:
    """Run every due Unitalk job (and what they enqueue) until none is due; return what ran.

    Jobs of other kinds (the call pipeline's, enqueued by `call_changed`) are left alone.
    """
    ran: list[Job] = []
    for _ in range(max_rounds):
        jobs.jobs_feed()  # received webhook events become their jobs, as the dispatcher does
        due = list(
            Job.objects.filter(
                kind__startswith="unitalk.",
                state__in=[Job.State.PENDING, Job.State.RETRYING],
                next_attempt_at__lte=timezone.now(),
            ).order_by("pk")
        )
        if not due:
            return ran
        for job in due:
            jobs.job_execute(job_id=job.pk)
            job.refresh_from_db()
            ran.append(job)
    raise AssertionError("jobs kept coming")
