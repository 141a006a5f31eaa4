"""Banners follow their causes and audiences; validation says what is true (issue 21, 5-7, 9)."""

from __future__ import annotations

import json

import pytest

from integration.calls.models import FailedCall
from integration.core import alerts
from integration.models import Notification
from integration.unitalk import services as unitalk_services
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, open_item, token, users

pytestmark = pytest.mark.django_db


def banners(client, portal, *, user_id=1, admin=True, page=""):
    response = client.get(
        f"/bitrix/actions/overview/?page={page}", **token(portal, user_id=user_id, admin=admin)
    )
    assert response.status_code == 200
    return [b["kind"] for b in response.json()["banners"]]


def post(client, portal, path, body, **kw):
    return client.post(
        path, json.dumps(body), content_type="application/json", **token(portal, **kw)
    )


def test_resolving_a_missed_call_clears_its_banner(client, portal):
    # given: a missed call, its item and its banner for the owner
    item = open_item(portal, kind=FailedCall.Kind.MISSED, number="380671234567", with_job=False)
    alerts.notification_raise(
        portal=portal,
        kind="call.missed",
        tag="call.missed:380671234567",
        message="missed",
        user_id=2,
        params={"phone": "380671234567"},
    )
    assert banners(client, portal, user_id=2, admin=False) == ["call.missed"]
    # when: the owner resolves it
    response = client.post(
        f"/bitrix/actions/failed/{item.pk}/resolve/", **token(portal, user_id=2, admin=False)
    )
    # then
    assert response.status_code == 200
    assert banners(client, portal, user_id=2, admin=False) == []


def test_admin_banners_are_for_admins_and_not_in_the_crm_tab(client, portal):
    alerts.notification_raise(
        portal=portal, kind="jobs.dead", tag="jobs:dead", message="x", params={"n": 1}
    )
    assert banners(client, portal, admin=True) == ["jobs.dead"]
    assert banners(client, portal, user_id=2, admin=False) == []
    assert banners(client, portal, admin=True, page="crm") == []


def test_mapping_the_last_unmapped_line_clears_its_banner(client, portal):
    # given: lines 101 and 102 without a user
    users(portal)
    unitalk_services.connection_create(portal=portal, api_key="Key12345")
    alerts.notification_raise(
        portal=portal,
        kind="unitalk.unmapped_lines",
        tag=unitalk_services.TAG_UNMAPPED_LINES,
        message="lines",
        params={"lines": ["101", "102"]},
    )
    # when: 101 is mapped, the banner names only 102; when 102 is too, it is gone
    assert (
        post(
            client, portal, "/bitrix/actions/operators/", {"user_id": 1, "line": "101"}
        ).status_code
        == 200
    )
    row = Notification.objects.get(resolved_at__isnull=True)
    assert row.params["lines"] == ["102"]
    assert (
        post(
            client, portal, "/bitrix/actions/operators/", {"user_id": 2, "line": "102"}
        ).status_code
        == 200
    )
    assert banners(client, portal) == []


def test_a_line_changing_hands_is_asked_first_and_a_row_can_be_removed(client, portal):
    # given: Oleg has line 101
    users(portal)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=2, line="101")
    # when: Anna maps herself to 101
    asked = post(client, portal, "/bitrix/actions/operators/", {"user_id": 1, "line": "101"})
    # then: nothing changed yet, and the page is told what would
    assert asked.status_code == 409
    assert "Oleg" in asked.json()["confirm"][0]
    assert "101" in asked.json()["confirm"][0]
    assert OperatorMapping.objects.get(line="101").bitrix_user_id == 2
    # when: she confirms, then removes the row
    body = {"user_id": 1, "line": "101", "confirm": True}
    assert post(client, portal, "/bitrix/actions/operators/", body).status_code == 200
    assert OperatorMapping.objects.get(line="101").bitrix_user_id == 1
    assert (
        post(
            client, portal, "/bitrix/actions/operators/", {"user_id": 1, "remove": True}
        ).status_code
        == 200
    )
    assert not OperatorMapping.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "user_id", "Choose the Bitrix24 user."),
        ({"user_id": "abc", "line": "101"}, "user_id", "positive number"),
        ({"user_id": "1"}, "line", "Enter the Unitalk inner line"),
    ],
)
def test_manual_mapping_errors_name_what_is_missing(client, portal, body, field, words):
    users(portal)
    response = post(client, portal, "/bitrix/actions/operators/", body)
    assert response.status_code == 400
    assert words in response.json()["errors"][field]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("user=abc", "user"),
        ("date_from=2025-02-10&date_to=2025-02-01", "date_to"),
        ("date_from=yesterday", "date_from"),
    ],
)
def test_list_filters_that_mean_nothing_are_field_errors(client, portal, query, field):
    response = client.get(f"/bitrix/actions/failed/?{query}", **token(portal))
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_test_connection_without_a_key_says_enter_a_key(client, portal):
    response = client.post("/bitrix/actions/settings/test/", **token(portal))
    assert response.status_code == 400
    assert response.json()["errors"]["api_key"] == "Enter your Unitalk API key and save it first."


def test_a_fresh_install_says_what_is_not_set_up(client, portal, rsps):
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'data-step="key"' in html
    assert 'data-step="lines"' in html
    assert 'id="all-good"' not in html
    assert 'class="badge zero"' in html
    assert f"<title>{portal.domain}" not in html


def test_failed_list_reads_in_people_words_with_the_detail_apart(client, portal):
    open_item(portal, reason="crm.activity.add: ACCESS_DENIED")
    response = client.get("/bitrix/actions/failed/?kind=crm_sync_failed", **token(portal))
    item = response.json()["items"][0]
    assert "ACCESS_DENIED" not in item["reason"]
    assert item["detail"] == "crm.activity.add: ACCESS_DENIED"
