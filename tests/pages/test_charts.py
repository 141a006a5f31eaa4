"""Issue 16: the overview's charts (calls per day by outcome, callback median, CRM-sync health,
answered/missed per employee) as server-drawn SVG."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from integration.calls import stats
from integration.calls.models import Call, CallSync
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, users
from tests.pages.test_calls_pages import a_call

pytestmark = pytest.mark.django_db(transaction=True)


def test_calls_per_day_count_each_outcome_on_its_day(portal, other_portal):
    a_call(portal, minutes_ago=60 * 24 * 2)
    a_call(portal, minutes_ago=60 * 24 * 2, state="NOANSWER", answered_at=None)
    a_call(portal, minutes_ago=1, direction=Call.Direction.OUT, state="BUSY", answered_at=None)
    a_call(portal, minutes_ago=60 * 24 * 45)  # outside the 30 days
    a_call(other_portal, minutes_ago=1)
    days = stats.calls_per_day(portal=portal)
    assert len(days) == 30
    assert days[-1]["day"] == timezone.localdate()
    by_day = {d["day"]: (d["answered"], d["missed"], d["failed"]) for d in days}
    assert by_day[timezone.localdate()] == (0, 0, 1)
    two_days_ago = timezone.localtime(timezone.now() - timedelta(days=2)).date()
    assert by_day[two_days_ago] == (1, 1, 0)
    assert sum(sum(v) for v in by_day.values()) == 3


def test_callback_median_is_the_wait_until_the_first_outgoing_call_to_that_number(portal):
    for minutes_ago, wait in ((300, 10), (200, 30), (100, None)):
        missed = a_call(
            portal,
            minutes_ago=minutes_ago,
            state="NOANSWER",
            answered_at=None,
            client_number=f"38050{minutes_ago:07d}",
        )
        if wait is not None:
            a_call(
                portal,
                minutes_ago=minutes_ago - wait,
                direction=Call.Direction.OUT,
                client_number=missed.client_number,
            )
    result = stats.callback_median(portal=portal)
    assert (result["missed"], result["called_back"]) == (3, 2)
    assert result["median_s"] == 20 * 60


def test_sync_health_is_the_share_saved_within_a_minute(portal):
    for delay in (5, 30, 300, None):
        call = a_call(portal)
        Call.objects.filter(pk=call.pk).update(ended_at=call.started_at + timedelta(seconds=60))
        call.refresh_from_db()
        CallSync.objects.create(
            portal=portal,
            origin=CallSync.Origin.UNITALK,
            call=call,
            finished_at=call.ended_at + timedelta(seconds=delay) if delay is not None else None,
        )
    health = stats.sync_health(portal=portal)
    assert (health["total"], health["in_time"], health["saved"]) == (4, 2, 3)
    assert health["share"] == 0.5


def test_per_user_counts_answered_and_missed_by_line_owner(portal):
    users(portal)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    a_call(portal)
    a_call(portal, state="NOANSWER", answered_at=None)
    a_call(portal, operator_line="999")  # a line nobody owns
    rows = stats.per_user(portal=portal)
    assert [(r["user"]["name"], r["answered"], r["missed"]) for r in rows] == [("Anna Admin", 1, 1)]


@pytest.mark.parametrize("lang", ["en", "uk", "ru"])
def test_overview_draws_the_charts_as_inline_svg(client, portal, rsps, lang):
    users(portal)
    fake_profile(rsps)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    a_call(portal)
    a_call(portal, state="NOANSWER", answered_at=None)
    html = enter(client, portal, "/bitrix/app/", lang=lang).content.decode()
    charts = html.split('id="charts"')[1].split("</section>")[0]
    assert charts.count('<svg class="bars"') == 1
    assert charts.count('class="answered"') >= 2  # a day bar and the employee's bar
    assert "<script" not in charts
    # numbers in SVG attributes are never localised ("66,67" would draw nothing in ru/uk)
    assert not re.search(r'(?:y|height|width)="[0-9]+,[0-9]', charts)
    assert 'id="chart-callback"' in charts
    assert 'id="chart-sync"' in charts
    assert "Anna Admin" in charts
