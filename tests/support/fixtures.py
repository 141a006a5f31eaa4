"""Fixtures shared by integration and page tests: no broker hand-offs, a `responses` mock."""

from __future__ import annotations

import pytest
import responses

from integration import jobs

__all__ = ["rsps", "sent"]


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """Jobs handed to the broker (not sent: tests run them with jobs.job_execute)."""
    handed: list[int] = []
    monkeypatch.setattr(
        jobs, "_send", lambda pairs, countdown=0: handed.extend(job_id for job_id, *_ in pairs)
    )
    return handed


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
