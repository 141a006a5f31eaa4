"""Failed-call lists for managers: filters, pages, retry, resolve, bulk retry; overview counts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from integration import jobs
from integration.calls.models import FailedCall
from integration.campaigns import callbacks
from integration.core import alerts
from integration.core.errors import PermanentError
from integration.models import Job
from tests.pages.conftest import enter, fake_profile, open_item, test_work_outcome, token

pytestmark = pytest.mark.django_db(transaction=True)


def listing(client, portal, query=""):
    return client.get(f"/bitrix/actions/failed/?{query}", **token(portal, admin=False)).json()


def test_retry_reruns_the_dead_job_and_its_success_resolves_the_item(client, portal):
    # given
    item = open_item(portal)
    # when
    response = client.post(f"/bitrix/actions/failed/{item.pk}/retry/", **token(portal))
    assert response.json()["item"]["state"] == "retrying"
    jobs.job_execute(job_id=item.job_id)
    # then
    item.refresh_from_db()
    assert item.state == FailedCall.State.RESOLVED
    assert item.resolution == "retried successfully"


def test_a_retry_that_fails_again_reopens_the_item_with_the_new_reason(client, portal):
    item = open_item(portal)
    test_work_outcome["next"] = PermanentError("crm.activity: still ACCESS_DENIED")
    client.post(f"/bitrix/actions/failed/{item.pk}/retry/", **token(portal))
    jobs.job_execute(job_id=item.job_id)
    item.refresh_from_db()
    assert item.state == FailedCall.State.OPEN
    assert "still ACCESS_DENIED" in item.reason


def test_retry_of_a_missed_call_is_refused_with_a_reason(client, portal):
    item = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    response = client.post(f"/bitrix/actions/failed/{item.pk}/retry/", **token(portal))
    assert response.status_code == 400
    assert "call the number back" in response.json()["error"]


def test_resolve_closes_the_item_and_records_who(client, portal):
    item = open_item(portal)
    response = client.post(
        f"/bitrix/actions/failed/{item.pk}/resolve/",
        json.dumps({"resolution": "called the client"}),
        content_type="application/json",
        **token(portal, user_id=7, admin=False),
    )
    assert response.json()["item"]["state"] == "resolved"
    item.refresh_from_db()
    assert (item.resolved_by_user_id, item.resolution) == (7, "called the client")


def test_bulk_retry_answers_for_each_item(client, portal):
    retryable = open_item(portal)
    missed = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    response = client.post(
        "/bitrix/actions/failed/retry/",
        json.dumps({"ids": [retryable.pk, missed.pk]}),
        content_type="application/json",
        **token(portal),
    )
    results = response.json()["results"]
    assert results[str(retryable.pk)] == "retrying"
    assert "call the number back" in results[str(missed.pk)]
    assert Job.objects.get(pk=retryable.job_id).state == Job.State.PENDING


def test_list_filters_by_kind(client, portal):
    missed = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    open_item(portal, kind=FailedCall.Kind.DIAL_FAILED)
    assert [i["id"] for i in listing(client, portal, "kind=missed")["items"]] == [missed.pk]


def test_open_missed_calls_come_in_the_dialers_order_with_where_each_stands(client, portal):
    # given an older missed call nobody dials, and a newer one queued in the autodialer
    older = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False, number="380501110001")
    newer = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False, number="380501110002")
    refused = open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False, number="380501110003")
    FailedCall.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
    callbacks.callback_item_add(item=newer, phone=newer.phone_number)
    callbacks.callback_item_add(
        item=refused, phone=refused.phone_number, refused="user 2 has no Unitalk line"
    )

    items = listing(client, portal, "kind=missed")["items"]

    # then the dialer's next callback first, then the longest waiting
    assert [i["id"] for i in items] == [newer.pk, older.pk, refused.pk]
    assert items[0]["dialer"].startswith("In the autodialer")
    assert items[1]["dialer"] == ""
    assert items[2]["dialer"] == "Not in the autodialer: user 2 has no Unitalk line"


def test_list_filters_by_user_and_reason(client, portal):
    mine = open_item(portal, owner=5, reason="Unitalk: line busy")
    open_item(portal, owner=5, reason="crm: ACCESS_DENIED")
    open_item(portal, owner=6, reason="Unitalk: line busy")
    items = listing(client, portal, "user=5&reason=busy")["items"]
    assert [i["id"] for i in items] == [mine.pk]


@pytest.mark.parametrize("user", ["¹²", "٣", "５", "-1", "1" * 12])  # noqa: RUF001 (look-alike digits are the point)
def test_a_user_filter_that_is_not_a_plain_number_is_a_400_naming_it(client, portal, user):
    # str.isdigit() takes superscript and other-script digits that int() refuses (tests/fuzz)
    response = client.get("/bitrix/actions/failed/", {"user": user}, **token(portal, admin=False))
    assert response.status_code == 400, response.content
    assert "user" in response.json()["errors"]


def test_list_filters_by_date(client, portal):
    old = open_item(portal)
    FailedCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    new = open_item(portal)
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert [i["id"] for i in listing(client, portal, f"date_from={since}")["items"]] == [new.pk]


def test_list_is_paginated(client, portal, settings):
    settings.PAGES_FAILED_CALLS_PER_PAGE = 2
    for _ in range(5):
        open_item(portal, with_job=False)
    second = listing(client, portal, "page=3")
    assert (second["page"], second["pages"], second["total"]) == (3, 3, 5)
    assert len(second["items"]) == 1


def test_resolved_items_are_listed_only_when_asked(client, portal):
    item = open_item(portal)
    client.post(f"/bitrix/actions/failed/{item.pk}/resolve/", **token(portal))
    assert listing(client, portal)["items"] == []
    assert [i["id"] for i in listing(client, portal, "state=resolved")["items"]] == [item.pk]


def test_overview_shows_open_counts_per_list(client, portal, rsps):
    open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    open_item(portal, kind=FailedCall.Kind.CRM_SYNC_FAILED)
    fake_profile(rsps, user_id="2", admin=False)
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'id="count-missed">\n    <span class="num">2</span>' in html
    assert 'id="count-crm_sync_failed">\n    <span class="num">1</span>' in html
    counts = client.get("/bitrix/actions/overview/", **token(portal)).json()["counts"]
    assert counts == {"dial_failed": 0, "missed": 2, "crm_sync_failed": 1}


def test_open_problems_show_as_banners_until_resolved(client, portal, rsps):
    # given
    alerts.notification_raise(
        portal=portal,
        kind="unitalk.credentials_invalid",
        tag="unitalk:credentials-invalid",
        message="Unitalk refused the API key ****1234.",
    )
    fake_profile(rsps)
    # when / then
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'data-kind="unitalk.credentials_invalid"' in html
    alerts.notification_resolve(portal=portal, tag="unitalk:credentials-invalid")
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'data-kind="unitalk.credentials_invalid"' not in html


def test_another_users_problem_is_not_shown_as_a_banner(client, portal):
    alerts.notification_raise(portal=portal, kind="calls.missed", message="for Oleg", user_id=2)
    mine = client.get("/bitrix/actions/overview/", **token(portal, user_id=2, admin=False))
    theirs = client.get("/bitrix/actions/overview/", **token(portal, user_id=3, admin=False))
    assert [b["message"] for b in mine.json()["banners"]] == ["for Oleg"]
    assert theirs.json()["banners"] == []


def test_an_admin_dismisses_a_banner_of_their_portal_only(client, portal, other_portal):
    mine = alerts.notification_raise(portal=portal, kind="jobs.dead", message="x")
    theirs = alerts.notification_raise(portal=other_portal, kind="jobs.dead", message="y")
    ok = client.post(f"/bitrix/actions/problems/{mine.pk}/dismiss/", **token(portal))
    refused = client.post(f"/bitrix/actions/problems/{theirs.pk}/dismiss/", **token(portal))
    assert ok.status_code == 200
    assert refused.status_code == 403
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.resolved_at is not None
    assert theirs.resolved_at is None


def test_a_manager_cannot_dismiss_a_banner(client, portal):
    row = alerts.notification_raise(portal=portal, kind="jobs.dead", message="x")
    response = client.post(
        f"/bitrix/actions/problems/{row.pk}/dismiss/", **token(portal, user_id=2, admin=False)
    )
    assert response.status_code == 403
