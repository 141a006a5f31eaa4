"""The "Add to campaign" robot's door and job (docs/campaigns.md, "The robot"): the portal POSTs
the handler form-encoded (as tests/sandbox/bitrix/test_bizproc.py shows the sandbox doing); the
door verifies the application_token, stores one row and answers 200; the job enrols the CRM
item's phones, deduped. Bad input is a 4xx with nothing stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from bitrixapp.models import BitrixEvent
from integration.bitrix import binding
from integration.campaigns import robot, services
from integration.campaigns.models import Campaign, CampaignItem
from integration.models import Job
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    call_settings,
    connection,
    portal,
    run_jobs,
)
from tests.integration.campaigns.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    campaign,
    crm,
)
from tests.support.factories import PortalFactory

pytestmark = pytest.mark.django_db

URL = "/bitrix/robots/add-to-campaign/"


def _form(portal, campaign_id: Any, *, document: str = "LEAD_1", **overrides: Any) -> str:
    """The handler body as a portal sends it: bracketed keys, form-encoded."""
    fields: dict[str, Any] = {
        "workflow_id": "64f1a2b3c4d5e6.12345678",
        "code": binding.ROBOT_CODE,
        "document_id[0]": "crm",
        "document_id[1]": "CCrmDocumentLead",
        "document_id[2]": document,
        "document_type[0]": "crm",
        "document_type[1]": "CCrmDocumentLead",
        "document_type[2]": "LEAD",
        "event_token": "64f1a2b3c4d5e6.12345678|A12345_00001_00002_00003|abc.def",
        f"properties[{binding.ROBOT_PROPERTY}]": campaign_id,
        "use_subscription": "N",
        "timeout_duration": "0",
        "ts": "1767225600",
        "auth[access_token]": "access-robot",
        "auth[application_token]": portal.application_token,
        "auth[member_id]": portal.member_id,
        "auth[domain]": portal.domain,
        "auth[user_id]": "2",
    }
    fields.update(overrides)
    return urlencode({k: v for k, v in fields.items() if v is not None})


def _post(client, body: str):
    return client.post(URL, body, content_type="application/x-www-form-urlencoded")


def _nothing_stored() -> bool:
    return (
        not BitrixEvent.objects.filter(event=robot.EVENT).exists()
        and not Job.objects.filter(kind=robot.KIND_ROBOT).exists()
    )


def test_a_robot_run_is_stored_answered_200_and_its_job_enrols_the_leads_phones(
    client, campaign, crm
):
    # Given a lead with two phones, one of them already in the campaign
    crm.add(1, 1, "+380501110001", "+38 (050) 111-00-02")
    services.items_add(campaign=campaign, entries=[services.Entry(raw_phone="+380501110001")])

    # When the robot runs on the lead
    answer = _post(client, _form(campaign.portal, campaign.pk))

    # Then the door answers at once with the stored row; Bitrix24 was not asked yet
    assert answer.status_code == 200, answer.content
    row = BitrixEvent.objects.get(event=robot.EVENT)
    assert answer.json() == {"ok": True, "id": row.pk, "duplicate": False}
    assert row.data == {
        "campaign_id": campaign.pk,
        "entity_type": "LEAD",
        "entity_type_id": 1,
        "entity_id": 1,
    }
    assert "access-robot" not in str(row.data)  # never the tokens
    assert crm.requests == []
    job = Job.objects.get(kind=robot.KIND_ROBOT, payload__event_id=row.pk)

    # And the job enrols the new number only (dedupe by normalised phone)
    run_jobs()
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    assert job.result["added"] == 1
    assert job.result["duplicate"] == 1
    phones = sorted(CampaignItem.objects.filter(campaign=campaign).values_list("phone", flat=True))
    assert phones == ["380501110001", "380501110002"]
    added = CampaignItem.objects.get(phone="380501110002")
    assert (added.entity_type, added.entity_id) == ("LEAD", 1)
    row.refresh_from_db()
    assert row.state == BitrixEvent.State.PROCESSED


def test_the_same_run_posted_twice_is_one_row_and_one_job(client, campaign, crm):
    crm.add(1, 1, "+380501110001")
    first = _post(client, _form(campaign.portal, campaign.pk))
    second = _post(client, _form(campaign.portal, campaign.pk))

    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    assert BitrixEvent.objects.filter(event=robot.EVENT).count() == 1
    assert Job.objects.filter(kind=robot.KIND_ROBOT).count() == 1


def test_a_deal_enrols_its_contacts_phones(client, campaign, crm):
    crm.add(3, 40, "+380671234567")
    crm.add(2, 7, contactId=40)

    _post(client, _form(campaign.portal, campaign.pk, document="DEAL_7"))
    run_jobs()

    item = CampaignItem.objects.get(campaign=campaign)
    assert (item.phone, item.entity_type, item.entity_id) == ("380671234567", "DEAL", 7)
    assert (item.phone_owner_type_id, item.phone_owner_id) == (3, 40)


def test_an_item_deleted_before_the_job_runs_is_recorded_not_retried(client, campaign, crm):
    _post(client, _form(campaign.portal, campaign.pk, document="LEAD_99"))
    run_jobs()

    row = BitrixEvent.objects.get(event=robot.EVENT)
    assert row.state == BitrixEvent.State.PROCESSED
    assert row.error == "the CRM item was not found in Bitrix24"
    assert not CampaignItem.objects.filter(campaign=campaign).exists()


def test_a_wrong_application_token_is_401_and_nothing_is_stored(client, campaign):
    forged = _form(campaign.portal, campaign.pk, **{"auth[application_token]": "not-the-token"})
    unknown = _form(campaign.portal, campaign.pk, **{"auth[member_id]": "someone-else"})
    missing = _form(campaign.portal, campaign.pk, **{"auth[application_token]": None})

    answers = [_post(client, body) for body in (forged, unknown, missing)]

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert _nothing_stored()


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        ({"code": "someone_elses_robot"}, 400, "code"),
        ({"document_id[2]": "LEAD_"}, 400, "document_id"),
        ({"document_id[2]": "TASK_5"}, 400, "document_id"),
        ({"document_id[2]": "LEAD_99999999999999"}, 400, "document_id"),
        ({"document_id[2]": "DYNAMIC_\u0661\u0662\u0668_4"}, 400, "document_id"),
        ({"document_id[2]": "LEAD_\u0663"}, 400, "document_id"),
        ({f"properties[{binding.ROBOT_PROPERTY}]": "spring"}, 400, "properties[campaign]"),
        ({f"properties[{binding.ROBOT_PROPERTY}]": None}, 400, "properties[campaign]"),
        ({f"properties[{binding.ROBOT_PROPERTY}]": "999999"}, 404, "properties"),
        ({"event_token": None}, 400, "event_token"),
        ({"auth[user_id]": "two"}, 400, "auth[user_id]"),
    ],
    ids=["code", "no-id", "not-crm", "id-too-big", "type-look-alike", "id-look-alike",
         "campaign-text", "no-campaign",
         "unknown-campaign", "no-token", "bad-user"],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx_and_nothing_is_stored(client, campaign, overrides, status, field):
    answer = _post(client, _form(campaign.portal, campaign.pk, **overrides))

    assert answer.status_code == status, answer.content
    assert answer.json()["field"] == field
    assert _nothing_stored()


def test_another_portals_campaign_is_not_found_and_a_finished_one_refused(client, campaign):
    other = PortalFactory(with_tokens=True, domain="other.bitrix24.com")
    foreign = _post(client, _form(other, campaign.pk))
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.FINISHED)
    finished = _post(client, _form(campaign.portal, campaign.pk))

    assert foreign.status_code == 404
    assert finished.status_code == 409
    assert _nothing_stored()


def test_malformed_bodies_are_400(client):
    not_form = client.post(URL, b"\xff\xfe", content_type="application/x-www-form-urlencoded")
    no_auth = _post(client, "code=x")
    get = client.get(URL)

    assert not_form.status_code == 400
    assert no_auth.status_code == 400
    assert get.status_code == 405
    assert _nothing_stored()


def test_install_registers_the_robot_with_its_handler_and_a_campaign_property(call_settings):
    method, params = binding.install_commands()[binding.ROBOT_KEY]

    assert method == "bizproc.robot.add"
    assert params["CODE"] == binding.ROBOT_CODE
    assert params["HANDLER"] == f"https://app.example.com{URL}"
    assert params["USE_SUBSCRIPTION"] == "N"
    assert set(params["NAME"]) == {"en", "uk", "ru"}
    assert params["NAME"]["uk"] != params["NAME"]["en"]  # translated
    prop = params["PROPERTIES"][binding.ROBOT_PROPERTY]
    assert (prop["Type"], prop["Required"]) == ("int", "Y")
