"""Fixtures for the page tests: two portals, page tokens, items on the failed-call lists."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.cache import cache

from bitrixapp import auth
from bitrixapp.models import Portal
from integration import jobs
from integration.bitrix import users as bitrix_users
from integration.calls import failed
from integration.calls.models import FailedCall
from integration.models import Job
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    _bitrix_settings,
    fake_user,
    portal,
    rsps,
    sent,
    user_token,
)

# The Bitrix24-side fixtures (settings, `portal`, `rsps`, `sent`) scoped to the page tests.
from tests.support.factories import PortalFactory

TEST_KIND = "pages.test_work"
#: What the test job kind does on its next run: "ok" or an exception to raise.
test_work_outcome: dict[str, Any] = {"next": "ok"}


@jobs.register(TEST_KIND)
def _test_work(job: Job) -> dict[str, Any]:
    outcome = test_work_outcome["next"]
    if isinstance(outcome, Exception):
        raise outcome
    return {"done": True}


@pytest.fixture
def other_portal(db) -> Portal:
    return PortalFactory(
        with_tokens=True,
        domain="other.bitrix24.com",
        access_token="access-b",
        refresh_token="refresh-b",
    )


def token(portal: Portal, *, user_id: int = 1, admin: bool = True) -> dict[str, str]:
    """Headers of a page request from `portal` by this user."""
    return {"HTTP_X_APP_TOKEN": auth.page_token_issue(portal, user_id, admin)}


def users(portal: Portal, ids: dict[int, str] | None = None) -> None:
    """The portal's user directory as the refresh job would leave it."""
    bitrix_users.users_directory_store(portal=portal, users=ids or {1: "Anna Admin", 2: "Oleg"})


def dead_job(portal: Portal, *, subject: str = "call:1") -> Job:
    job = jobs.job_enqueue(kind=TEST_KIND, portal=portal, subject=subject)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.DEAD, attempts=5, last_error="crm.activity: ACCESS_DENIED"
    )
    job.refresh_from_db()
    return job


def open_item(
    portal: Portal,
    *,
    kind: str = FailedCall.Kind.CRM_SYNC_FAILED,
    number: str = "380501112233",
    owner: int | None = 2,
    with_job: bool = True,
    reason: str = "crm.activity: ACCESS_DENIED",
) -> FailedCall:
    job = dead_job(portal) if with_job else None
    return failed.failed_call_open(
        portal=portal,
        kind=kind,
        dedupe_key=f"{kind}:{uuid.uuid4().hex}",
        reason=reason,
        phone_number=number,
        owner_user_id=owner,
        job=job,
    )


def fake_profile(rsps: Any, *, user_id: str = "1", admin: bool = True) -> None:
    fake_user(rsps, user_id=user_id, admin=admin)


def enter(client: Any, portal: Portal, path: str, *, lang: str = "en", **form: str) -> Any:
    """The portal opening one of our pages: form POST with AUTH_ID, LANG in the query."""
    return client.post(
        f"{path}?DOMAIN={portal.domain}&PROTOCOL=1&LANG={lang}&APP_SID=s1",
        {"AUTH_ID": user_token(portal), "member_id": portal.member_id, **form},
    )


@pytest.fixture(autouse=True)
def _fresh_outcome():
    test_work_outcome["next"] = "ok"
    yield
    cache.clear()
