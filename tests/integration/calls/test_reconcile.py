"""Reconciliation with history/get: lost webhooks become finished calls; windows; fan-out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from integration.calls import merge, reconcile
from integration.calls.models import Call
from integration.models import Job
from integration.unitalk import services
from integration.unitalk.models import UnitalkConnection

# The Unitalk side's fixtures (its settings, a portal with a connection), taken by name.
from tests.integration.unitalk.conftest import (  # noqa: F401
    API,
    _unitalk_settings,
    api_key,
    connection,
    kicks,
    payload,
    portal,
    run_jobs,
)
from tests.support.factories import PortalFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 9, 16, 0, tzinfo=UTC)  # 19:00 in Kyiv


@pytest.fixture
def hook_calls(monkeypatch):
    seen: list[tuple[str, str]] = []

    def watch(*, call, event):
        seen.append((call.unitalk_call_id, event))

    monkeypatch.setattr(merge, "call_changed", watch)
    monkeypatch.setattr(reconcile, "call_changed", watch)
    return seen


def test_calls_missing_or_unfinished_are_completed_from_history(
    client, connection, portal, rsps, hook_calls
):
    # given: one call whose CALL_END webhook was lost, another we never heard of
    new = payload("call_new_in")
    new["call"].update(id=1093001, date="2026-07-09 18:00:00")
    client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(new),
        content_type="application/json",
    )
    run_jobs()
    hook_calls.clear()
    rsps.post(f"{API}/history/get", json=payload("history_get"))

    # when
    result = reconcile.reconcile_portal(portal=portal, now=NOW)

    # then
    assert result["recovered"] == 2
    lost_end = Call.objects.get(unitalk_call_id="1093001")
    assert (lost_end.status, lost_end.state, lost_end.talk_seconds) == ("ended", "ANSWER", 31)
    assert lost_end.reconciled
    never_seen = Call.objects.get(unitalk_call_id="1093002")
    assert (never_seen.direction, never_seen.ended, never_seen.reconciled) == ("missed", True, True)
    assert sorted(hook_calls) == [("1093001", "RECONCILED"), ("1093002", "RECONCILED")]


def test_calls_already_finished_by_webhooks_are_left_alone(connection, portal, rsps, hook_calls):
    rsps.post(f"{API}/history/get", json=payload("history_get"))
    reconcile.reconcile_portal(portal=portal, now=NOW)
    hook_calls.clear()

    result = reconcile.reconcile_portal(portal=portal, now=NOW)

    assert result["recovered"] == 0
    assert hook_calls == []


def test_history_call_is_matched_by_dbid_when_its_id_differs(connection, portal, rsps, hook_calls):
    Call.objects.create(portal=portal, unitalk_call_id="webhook-id-1", unitalk_dbid=280)
    rsps.post(f"{API}/history/get", json=payload("history_get"))

    reconcile.reconcile_portal(portal=portal, now=NOW)

    assert Call.objects.get(unitalk_dbid=280).unitalk_call_id == "webhook-id-1"
    assert Call.objects.count() == 2


def test_window_is_the_last_two_hours_in_the_connection_timezone(connection, portal, rsps):
    rsps.post(f"{API}/history/get", json={"count": 0, "calls": [], "warning": None})

    reconcile.reconcile_portal(portal=portal, now=NOW)

    sent = json.loads(rsps.calls[0].request.body)
    assert (sent["dateFrom"], sent["dateTo"]) == ("2026-07-09 17:00:00", "2026-07-09 19:00:00")
    connection.refresh_from_db()
    assert connection.reconciled_until == NOW


def test_after_downtime_the_window_reaches_back_to_the_last_run(connection, portal, settings):
    settings.UNITALK_RECONCILE_OVERLAP_S = 600
    connection.reconciled_until = NOW - timedelta(hours=6)

    start, end = reconcile.reconcile_window(connection=connection, now=NOW)

    assert (start, end) == (NOW - timedelta(hours=6, minutes=10), NOW)


def test_backfill_never_reaches_beyond_its_limit(connection, settings):
    settings.UNITALK_RECONCILE_MAX_BACKFILL_S = 3600 * 24
    connection.reconciled_until = NOW - timedelta(days=5)

    start, _ = reconcile.reconcile_window(connection=connection, now=NOW)

    assert start == NOW - timedelta(days=1)


def test_beat_enqueues_one_job_per_usable_connection_per_interval(connection, portal, db):
    refused = PortalFactory(domain="r.bitrix24.ua")
    UnitalkConnection.objects.filter(
        pk=services.connection_create(portal=refused, api_key="x").pk
    ).update(status="credentials_invalid")

    assert reconcile.reconcile_enqueue_all(now=NOW) == 1
    assert reconcile.reconcile_enqueue_all(now=NOW + timedelta(seconds=1)) == 1

    jobs = Job.objects.filter(kind=reconcile.KIND_RECONCILE)
    assert [j.portal_id for j in jobs] == [portal.pk]


def test_beat_entries_exist_for_reconciliation_and_operator_sync(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"unitalk.reconcile_all", "unitalk.operators_sync_all"} <= tasks
