"""Loading numbers from Bitrix24: CRM filter pages, deals through contacts, call lists, and a
source of 10,000 items that is paged and batched, never one request (docs/agents.md §2)."""

from __future__ import annotations

import json

import pytest

from integration.campaigns import services, sources, tick
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

pytestmark = pytest.mark.django_db


def _source(campaign, source, **params) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(source=source, source_params=params)
    campaign.refresh_from_db()
    return campaign


def test_crm_filter_loads_leads_with_phones_through_a_job(campaign, crm):
    crm.add(1, 1, "+380501110001", "+380501110002")
    crm.add(1, 2, "0501110001")  # the same number as lead 1's first: merged
    crm.add(1, 3)  # no phone at all
    _source(campaign, Campaign.Source.CRM_FILTER, entity_type_id=1, filter={"=stageId": "NEW"})

    services.campaign_load_enqueue(campaign=campaign)
    run_jobs()

    campaign.refresh_from_db()
    assert campaign.load_state == Campaign.LoadState.LOADED
    rows = set(CampaignItem.objects.values_list("entity_id", "phone", "state", "reason"))
    assert rows == {
        (1, "380501110001", "pending", ""),
        (1, "380501110002", "pending", ""),
        (3, "", "skipped", "no phone number"),
    }
    [select] = {
        tuple(json.loads(c.request.body)["select"])
        for c in crm.rsps.calls
        if c.request.url.endswith("crm.item.list")
    }
    assert select == ("*",)  # phones come only with select ['*']


def test_a_deal_is_dialled_at_its_contacts_phones(campaign, crm):
    crm.add(3, 40, "+380671234567")
    crm.add(2, 7, contactId=40, title="Big deal")
    _source(campaign, Campaign.Source.CRM_FILTER, entity_type_id=2, filter={})

    sources.campaign_load(campaign=campaign)

    item = CampaignItem.objects.get()
    assert (item.entity_type, item.entity_id, item.phone) == ("DEAL", 7, "380671234567")
    assert (item.phone_owner_type_id, item.phone_owner_id) == (3, 40)


def test_ten_thousand_items_are_paged_in_batches_never_one_request(campaign, crm, settings):
    for n in range(1, 10_001):
        crm.add(3, n, f"+38050{n:07d}")
    _source(campaign, Campaign.Source.CRM_FILTER, entity_type_id=3, filter={})

    counts = sources.campaign_load(campaign=campaign)

    assert counts == {"added": 10_000, "duplicate": 0, "invalid": 0}
    assert CampaignItem.objects.filter(state="pending").count() == 10_000
    # first page alone (it tells the total), then 199 pages in batches of at most 50
    assert crm.count("crm.item.list") == 1
    assert crm.count("batch") == 4


def test_a_smart_process_filter_is_dialled_at_its_items_contacts_or_companys_phones(campaign, crm):
    # Given smart-process items (entityTypeId 128 → DYNAMIC_128, no phones of their own)
    crm.add(3, 40, "+380671234567")
    crm.add(4, 12, "+380441110012")
    crm.add(128, 1, contactId=40, companyId=12, assignedById=9)  # the contact wins
    crm.add(128, 2, companyId=12)
    crm.add(128, 3)  # neither: nobody to call
    _source(
        campaign, Campaign.Source.CRM_FILTER, entity_type_id=128, filter={"=stageId": "DT128_1:NEW"}
    )

    # When the filter is loaded
    counts = sources.campaign_load(campaign=campaign)

    # Then each item takes its contact's phone, else its company's; with neither it is skipped
    assert counts == {"added": 2, "duplicate": 0, "invalid": 1}
    rows = set(
        CampaignItem.objects.values_list(
            "entity_type", "entity_type_id", "entity_id", "phone_owner_type_id",
            "phone_owner_id", "phone", "responsible_user_id", "state",
        )
    )  # fmt: skip
    assert rows == {
        ("DYNAMIC_128", 128, 1, 3, 40, "380671234567", 9, "pending"),
        ("DYNAMIC_128", 128, 2, 4, 12, "380441110012", 1, "pending"),
        ("DYNAMIC_128", 128, 3, 128, 3, "", 1, "skipped"),
    }
    [listed] = {
        json.loads(c.request.body)["entityTypeId"]
        for c in crm.rsps.calls
        if c.request.url.endswith("crm.item.list")
    }
    assert listed == 128


def test_a_company_filter_is_dialled_at_the_companies_own_phones(campaign, crm):
    # Given companies with their own phones (`fm`), one without
    crm.add(4, 12, "+380441110012", "+380441110013")
    crm.add(4, 13)
    crm.add(3, 40, "+380671234567")  # a contact: not of this filter
    _source(campaign, Campaign.Source.CRM_FILTER, entity_type_id=4, filter={})

    # When the filter is loaded
    sources.campaign_load(campaign=campaign)

    # Then every company phone is a number, owned by the company itself
    rows = set(
        CampaignItem.objects.values_list(
            "entity_type", "entity_id", "phone_owner_type_id", "phone_owner_id", "phone", "reason"
        )
    )
    assert rows == {
        ("COMPANY", 12, 4, 12, "380441110012", ""),
        ("COMPANY", 12, 4, 12, "380441110013", ""),
        ("COMPANY", 13, 4, 13, "", "no phone number"),
    }
    assert crm.count("batch") == 0  # companies carry phones: no owner lookup


def test_call_list_members_are_enrolled_with_the_list_id(campaign, crm):
    crm.add(3, 11, "+380501110011")
    crm.add(4, 12, "+380441110012")
    crm.call_lists[5] = [
        {"ID": 11, "STATUS": "IN_WORK", "ENTITY_TYPE": "CONTACT"},
        {"ID": 12, "STATUS": "IN_WORK", "ENTITY_TYPE": "COMPANY"},
    ]
    _source(campaign, Campaign.Source.CALL_LIST, list_id=5)

    sources.campaign_load(campaign=campaign)

    rows = set(CampaignItem.objects.values_list("entity_type", "entity_id", "call_list_id"))
    assert rows == {("CONTACT", 11, 5), ("COMPANY", 12, 5)}


def test_a_source_that_cannot_be_read_is_shown_on_the_campaign(campaign, crm):
    _source(campaign, Campaign.Source.CRM_FILTER, filter={})

    services.campaign_load_enqueue(campaign=campaign)
    run_jobs()

    campaign.refresh_from_db()
    assert campaign.load_state == Campaign.LoadState.FAILED
    assert campaign.load_error == "the CRM filter names no entity type"
    assert Job.objects.get(kind=services.KIND_LOAD).state == Job.State.DEAD
    assert not CampaignItem.objects.exists()

    # Started anyway, it finishes saying so, not that the source had no numbers.
    services.campaign_start(campaign=campaign)
    tick.campaign_tick(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert (campaign.state, campaign.state_reason) == (
        Campaign.State.FINISHED,
        "the numbers could not be loaded",
    )


@pytest.mark.parametrize("leads", [0, 2], ids=["filter matches nothing", "leads without phones"])
def test_a_source_with_no_number_to_dial_finishes_with_its_own_reason(campaign, crm, leads):
    # Given a CRM filter that yields no number: no lead at all, or leads without phones
    for n in range(1, leads + 1):
        crm.add(1, n)
    _source(campaign, Campaign.Source.CRM_FILTER, entity_type_id=1, filter={"=stageId": "NEW"})

    # When it is loaded and started
    services.campaign_load_enqueue(campaign=campaign)
    services.campaign_start(campaign=campaign)
    run_jobs()

    # Then it finishes because the source was empty, not "every number has a final outcome"
    campaign.refresh_from_db()
    assert campaign.load_state == Campaign.LoadState.LOADED
    assert (campaign.state, campaign.state_reason) == (
        Campaign.State.FINISHED,
        "the source had no numbers to dial",
    )
    assert CampaignItem.objects.filter(state="skipped").count() == leads


@pytest.mark.parametrize("name", ["DYNAMIC_" + "9" * 5000, "DYNAMIC_²", "DYNAMIC_0", "DYNAMIC_"])
def test_an_odd_dynamic_type_name_is_unknown(name):
    # The one integer parser (integration/core/inputs.py): int() raised on 5,000 digits.
    assert sources.type_id_for(name) is None


def test_a_dynamic_type_name_gives_its_entity_type_id():
    assert sources.type_id_for("DYNAMIC_128") == 128
