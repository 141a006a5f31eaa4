"""The settings page and its actions: validation per field, write-only key, connection test."""

from __future__ import annotations

import json

import pytest
import responses

from bitrixapp.models import portal_options
from integration import jobs
from integration.models import Job
from integration.unitalk import services as unitalk_services
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, token, users

pytestmark = pytest.mark.django_db(transaction=True)

UNITALK = "https://api.unitalk.test/api"
VALID = {
    "create_leads": True,
    "card_mode": "answer",
    "recordings_to_drive": False,
    "missed_owner_rule": "default",
    "default_user_id": "2",
    "notify_user_ids": "1, 2",
    "stakeholder_emails": "boss@example.com; ops@example.com",
    "daily_digest": True,
}


@pytest.fixture(autouse=True)
def _unitalk(settings, tmp_path):
    settings.UNITALK_API_URL = UNITALK
    settings.UNITALK_RATE_BURST = 1000
    settings.UNITALK_RATE_PER_SECOND = 1000.0


def save(client, portal, data):
    return client.post(
        "/bitrix/actions/settings/",
        json.dumps(data),
        content_type="application/json",
        **token(portal),
    )


def test_valid_options_are_saved(client, portal):
    # given
    users(portal)
    # when
    response = save(client, portal, VALID)
    # then
    assert response.status_code == 200
    options = portal_options(portal)
    assert options.card_mode == "answer"
    assert options.create_leads is True
    assert options.recordings_to_drive is False
    assert options.default_user_id == 2
    assert options.notify_user_ids == [1, 2]
    assert options.stakeholder_email_list == ["boss@example.com", "ops@example.com"]
    assert options.updated_by_user_id == 1


def test_bad_email_is_an_error_on_its_field_and_nothing_is_saved(client, portal):
    users(portal)
    response = save(client, portal, VALID | {"stakeholder_emails": "boss@example.com, not-mail"})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["stakeholder_emails"]
    assert "not-mail" in response.json()["errors"]["stakeholder_emails"]
    assert portal_options(portal).card_mode == "ring"


def test_unknown_user_id_is_an_error_on_its_field(client, portal):
    users(portal, {1: "Anna"})
    response = save(client, portal, VALID | {"default_user_id": "77", "notify_user_ids": ""})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"default_user_id"}
    assert portal_options(portal).default_user_id is None


def test_user_ids_are_refused_until_the_user_list_is_loaded(client, portal):
    response = save(client, portal, VALID)
    assert response.status_code == 400
    assert "loading" in response.json()["errors"]["default_user_id"]


def test_empty_api_key_is_an_error_and_the_stored_key_stays(client, portal):
    unitalk_services.connection_create(portal=portal, api_key="OldKey9876")
    response = client.post(
        "/bitrix/actions/settings/key/",
        json.dumps({"api_key": "  "}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 400
    assert "api_key" in response.json()["errors"]
    assert portal.unitalk.api_key == "OldKey9876"


def test_saved_key_is_answered_by_its_last_four_characters_only(client, portal):
    response = client.post(
        "/bitrix/actions/settings/key/",
        json.dumps({"api_key": "SecretUnitalkKey4321"}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 200
    assert response.json()["key_masked"] == "****4321"
    assert "SecretUnitalkKey4321" not in response.content.decode()
    assert response.json()["webhook_url"].startswith("https://app.example.com/unitalk/webhook/")
    # the key is checked on save by a job, and until it answers the page says so
    assert Job.objects.get(pk=response.json()["job"]).kind == unitalk_services.KIND_CONNECTION_TEST
    assert response.json()["unitalk_state"] == "checking"
    assert "accepted" not in response.json()["health_html"]
    assert "****4321" in response.json()["health_html"]


def test_settings_page_never_shows_the_full_key(client, portal, rsps):
    unitalk_services.connection_create(portal=portal, api_key="SecretUnitalkKey4321")
    fake_profile(rsps)
    response = enter(client, portal, "/bitrix/app/settings/")
    html = response.content.decode()
    assert "SecretUnitalkKey4321" not in html
    assert "****4321" in html
    assert "/unitalk/webhook/" in html


def test_connection_test_runs_as_a_job_and_reports_the_answer(client, portal):
    # given
    unitalk_services.connection_create(portal=portal, api_key="GoodKey1234")
    # when
    response = client.post("/bitrix/actions/settings/test/", **token(portal))
    job_id = response.json()["job"]
    with responses.RequestsMock() as unitalk:
        unitalk.post(UNITALK + "/users/list", json={"users": [{"line": "101"}, {"line": "102"}]})
        jobs.job_execute(job_id=job_id)
    status = client.get(f"/bitrix/actions/jobs/{job_id}/", **token(portal)).json()
    # then
    assert response.status_code == 202
    assert status["done"] is True
    assert status["result"] == {"ok": True, "status": "ok", "error": "", "operators": 2}


def test_connection_test_reports_a_refused_key(client, portal):
    unitalk_services.connection_create(portal=portal, api_key="BadKey0000")
    job_id = client.post("/bitrix/actions/settings/test/", **token(portal)).json()["job"]
    with responses.RequestsMock() as unitalk:
        unitalk.post(
            UNITALK + "/users/list", json={"status": "Error", "message": "Authorization invalid"}
        )
        jobs.job_execute(job_id=job_id)
    result = client.get(f"/bitrix/actions/jobs/{job_id}/", **token(portal)).json()["result"]
    assert result["ok"] is False
    assert result["status"] == "credentials_invalid"


def test_auto_match_queues_the_operator_sync_job(client, portal):
    response = client.post("/bitrix/actions/operators/sync/", **token(portal))
    job = Job.objects.get(pk=response.json()["job"])
    assert job.kind == unitalk_services.KIND_OPERATORS_SYNC
    assert job.portal_id == portal.pk


def test_manual_mapping_of_a_known_user_is_stored(client, portal):
    users(portal)
    response = client.post(
        "/bitrix/actions/operators/",
        json.dumps({"user_id": "2", "line": "102"}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 200
    mapping = OperatorMapping.objects.get(portal=portal, bitrix_user_id=2)
    assert (mapping.line, mapping.source) == ("102", "manual")


def test_mapping_rows_are_redrawn_from_the_stored_mappings(client, portal):
    users(portal)
    client.post(
        "/bitrix/actions/operators/",
        json.dumps({"user_id": "2", "line": "102"}),
        content_type="application/json",
        **token(portal),
    )
    response = client.get("/bitrix/actions/operators/rows/", **token(portal))
    assert response.status_code == 200
    html = response.json()["html"]
    assert 'data-line="102"' in html
    assert "Oleg" in html
    assert 'data-unmap="2"' in html
    assert (
        client.get("/bitrix/actions/operators/rows/", **token(portal, admin=False)).status_code
        == 403
    )


def test_manual_mapping_of_an_unknown_user_is_refused(client, portal):
    users(portal, {1: "Anna"})
    response = client.post(
        "/bitrix/actions/operators/",
        json.dumps({"user_id": "9", "line": "109"}),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 400
    assert "user_id" in response.json()["errors"]
    assert not OperatorMapping.objects.filter(portal=portal).exists()


def test_settings_page_shows_connection_health(client, portal, rsps):
    unitalk_services.connection_create(portal=portal, api_key="Key12345678")
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/settings/").content.decode()
    assert 'data-health="bitrix"' in html
    assert "connected" in html
    assert 'data-health="unitalk"' in html
    assert "accepted" in html


def test_opening_settings_queues_a_user_list_refresh(client, portal, rsps):
    fake_profile(rsps)
    enter(client, portal, "/bitrix/app/settings/")
    assert Job.objects.filter(portal=portal, kind="bitrix.users_refresh").count() == 1
