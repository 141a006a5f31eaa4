"""Pages and actions act only for the portal and user of the signed page token."""

from __future__ import annotations

import json

import pytest

from bitrixapp.models import portal_options
from integration.calls.models import FailedCall
from tests.pages.conftest import dead_job, enter, fake_profile, open_item, token, users

pytestmark = pytest.mark.django_db(transaction=True)


def test_token_of_portal_a_cannot_retry_an_item_of_portal_b(client, portal, other_portal):
    # given
    item_b = open_item(other_portal)
    # when
    response = client.post(f"/bitrix/actions/failed/{item_b.pk}/retry/", **token(portal))
    # then
    assert response.status_code == 403
    item_b.refresh_from_db()
    assert item_b.state == FailedCall.State.OPEN


def test_token_of_portal_a_cannot_resolve_an_item_of_portal_b(client, portal, other_portal):
    item_b = open_item(other_portal)
    response = client.post(f"/bitrix/actions/failed/{item_b.pk}/resolve/", **token(portal))
    assert response.status_code == 403
    item_b.refresh_from_db()
    assert item_b.state == FailedCall.State.OPEN


def test_bulk_retry_skips_items_of_another_portal(client, portal, other_portal):
    item_b = open_item(other_portal)
    response = client.post(
        "/bitrix/actions/failed/retry/",
        json.dumps({"ids": [item_b.pk]}),
        content_type="application/json",
        **token(portal),
    )
    assert response.json()["results"] == {str(item_b.pk): "not found for this portal"}
    item_b.refresh_from_db()
    assert item_b.state == FailedCall.State.OPEN


def test_failed_list_shows_only_the_tokens_portal(client, portal, other_portal):
    mine = open_item(portal)
    open_item(other_portal)
    response = client.get(
        "/bitrix/actions/failed/?kind=crm_sync_failed", **token(portal, admin=False)
    )
    assert [i["id"] for i in response.json()["items"]] == [mine.pk]


def test_job_of_another_portal_is_not_readable(client, portal, other_portal):
    job_b = dead_job(other_portal)
    response = client.get(f"/bitrix/actions/jobs/{job_b.pk}/", **token(portal))
    assert response.status_code == 403


def test_admin_token_of_portal_a_changes_only_portal_a_settings(client, portal, other_portal):
    users(portal)
    response = client.post(
        "/bitrix/actions/settings/",
        json.dumps({"card_mode": "never", "missed_owner_rule": "last_user"}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 200
    assert portal_options(portal).card_mode == "never"
    assert portal_options(other_portal).card_mode == "ring"


def test_non_admin_cannot_post_settings(client, portal):
    users(portal)
    response = client.post(
        "/bitrix/actions/settings/",
        json.dumps({"card_mode": "never", "missed_owner_rule": "crm"}),
        content_type="application/json",
        **token(portal, user_id=2, admin=False),
    )
    assert response.status_code == 403
    assert portal_options(portal).card_mode == "ring"


def test_non_admin_cannot_save_the_unitalk_key(client, portal):
    response = client.post(
        "/bitrix/actions/settings/key/",
        json.dumps({"api_key": "NewKey1234"}),
        content_type="application/json",
        **token(portal, user_id=2, admin=False),
    )
    assert response.status_code == 403


def test_non_admin_cannot_open_the_settings_page(client, portal, rsps):
    # given: the portal says user 2 is not an admin
    fake_profile(rsps, user_id="2", admin=False)
    # when
    response = enter(client, portal, "/bitrix/app/settings/")
    # then
    assert response.status_code == 403
    assert b'id="forbidden"' in response.content
    assert b"options-form" not in response.content


def test_admin_opens_the_settings_page(client, portal, rsps):
    fake_profile(rsps, user_id="1", admin=True)
    response = enter(client, portal, "/bitrix/app/settings/")
    assert response.status_code == 200
    assert b'id="options-form"' in response.content


def test_non_admin_sees_no_settings_tab(client, portal, rsps):
    fake_profile(rsps, user_id="2", admin=False)
    response = enter(client, portal, "/bitrix/app/")
    assert response.status_code == 200
    assert b'id="tab-settings"' not in response.content


def test_actions_without_a_token_are_refused(client, portal):
    item = open_item(portal)
    assert client.get("/bitrix/actions/failed/").status_code == 401
    assert client.post(f"/bitrix/actions/failed/{item.pk}/resolve/").status_code == 401


def test_token_in_a_header_passes_csrf_checks_without_cookies(portal):
    # given: a client that enforces Django's CSRF check, as a browser request would face it
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    item = open_item(portal)
    # when
    response = strict.post(f"/bitrix/actions/failed/{item.pk}/resolve/", **token(portal))
    # then
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.state == FailedCall.State.RESOLVED
