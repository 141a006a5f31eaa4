"""Campaign pages and actions: list, detail with progress, outcomes, agents and filtered items;
start/pause/stop by managers only; another portal's campaign is not found."""

from __future__ import annotations

import json

import pytest

from integration.campaigns import services
from integration.campaigns.models import Attempt, Campaign, CampaignItem
from integration.campaigns.services import Entry
from integration.models import Job
from tests.pages.conftest import enter, fake_profile, other_portal, token  # noqa: F401
from tests.support.factories import AgentStateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(portal) -> Campaign:
    campaign = services.campaign_create(portal=portal, name="Spring leads", agent_user_ids=[1, 2])
    services.items_add(
        campaign=campaign,
        entries=[
            Entry(raw_phone="+380501110001", entity_type="LEAD", entity_id=1),
            Entry(raw_phone="+380501110002", entity_type="LEAD", entity_id=2),
            Entry(raw_phone="12345", entity_type="LEAD", entity_id=3),
        ],
    )
    first = CampaignItem.objects.get(phone="380501110001")
    CampaignItem.objects.filter(pk=first.pk).update(state="done", attempts=1, last_outcome="ANSWER")
    Attempt.objects.create(item=first, number=1, agent_user_id=1, outcome="ANSWER", charged=True)
    return campaign


def test_list_shows_each_campaign_with_its_progress(client, portal, rsps, campaign):
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/campaigns/").content.decode()
    assert "Spring leads" in html
    assert "2 of 3 done" in html  # reached + skipped are final
    assert 'aria-valuenow="67"' in html


def test_detail_filters_items_by_state_and_shows_outcomes_and_agents(
    client, portal, rsps, campaign
):
    fake_profile(rsps)
    html = enter(
        client, portal, "/bitrix/app/campaigns/", campaign=str(campaign.pk), state="skipped"
    ).content.decode()
    assert "a phone number has 10-15 digits, &#x27;12345&#x27; has 5" in html
    assert "380501110002" not in html  # waiting: filtered out
    assert "<th>ANSWER</th>" in html
    assert 'data-agent="2"' in html


def test_detail_shows_each_agents_presence_and_why_the_dialer_skips_them(
    client, portal, rsps, campaign
):
    # agent 1 on a break, agent 2 never read from Bitrix24 (no presence row yet)
    AgentStateFactory(portal=portal, bitrix_user_id=1, state="paused", reason="break")
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/campaigns/", campaign=str(campaign.pk)).content
    page = html.decode()
    assert '<td class="presence">Paused: on a break</td>' in page
    assert '<td class="presence">never read</td>' in page


def test_ukrainian_detail_page(client, portal, rsps, campaign):
    fake_profile(rsps)
    html = enter(
        client, portal, "/bitrix/app/campaigns/", lang="ua", campaign=str(campaign.pk)
    ).content.decode()
    assert "Кампанії" in html
    assert "Запустити" in html
    assert "2 з 3 завершено" in html
    assert "номер телефону має 10-15 цифр, &#x27;12345&#x27; має 5" in html


def test_a_campaign_whose_source_had_no_numbers_says_so_in_the_pages_language(client, portal, rsps):
    campaign = services.campaign_create(portal=portal, name="Empty filter", agent_user_ids=[1])
    Campaign.objects.filter(pk=campaign.pk).update(
        state=Campaign.State.FINISHED, state_reason="the source had no numbers to dial"
    )
    fake_profile(rsps)
    english = enter(client, portal, "/bitrix/app/campaigns/", campaign=str(campaign.pk))
    ukrainian = enter(
        client, portal, "/bitrix/app/campaigns/", lang="ua", campaign=str(campaign.pk)
    )
    reason = '<span class="muted" id="campaign-reason">{}</span>'
    assert reason.format("the source had no numbers to dial") in english.content.decode()
    shown = reason.format("у джерелі не було номерів для дзвінків")  # noqa: RUF001
    assert shown in ukrainian.content.decode()


def test_manager_starts_pauses_and_stops(client, portal, campaign):
    url = f"/bitrix/actions/campaigns/{campaign.pk}/"
    started = client.post(url + "start/", **token(portal))
    assert started.status_code == 200
    assert started.json()["campaign"]["state"] == "running"
    assert Job.objects.filter(kind=services.KIND_TICK).exists()
    assert client.post(url + "pause/", **token(portal)).json()["campaign"]["state"] == "paused"
    stopped = client.post(url + "stop/", **token(portal)).json()["campaign"]
    assert stopped == {"id": campaign.pk, "state": "finished", "reason": "stopped by a manager"}
    again = client.post(url + "start/", **token(portal))
    assert again.status_code == 409
    assert CampaignItem.objects.filter(state="pending").count() == 0


def test_agents_cannot_start_campaigns_but_can_pause_themselves(client, portal, campaign):
    url = f"/bitrix/actions/campaigns/{campaign.pk}/"
    refused = client.post(url + "start/", **token(portal, user_id=2, admin=False))
    assert refused.status_code == 403
    paused = client.post(url + "agent/pause/", **token(portal, user_id=2, admin=False))
    assert paused.json() == {"paused": True, "reason": "paused by the agent"}
    stranger = client.post(url + "agent/pause/", **token(portal, user_id=9, admin=False))
    assert stranger.status_code == 403


def test_another_portals_campaign_is_not_found_and_bad_input_is_a_400(
    client, campaign, other_portal
):
    url = f"/bitrix/actions/campaigns/{campaign.pk}/start/"
    assert client.post(url, **token(other_portal)).status_code == 403
    bad = client.post(f"/bitrix/actions/campaigns/{campaign.pk}/explode/", **token(other_portal))
    assert bad.status_code == 400
    assert "action" in json.dumps(bad.json())
    huge = client.post(
        "/bitrix/actions/campaigns/99999999999999999999/start/", **token(other_portal)
    )
    assert huge.status_code == 400
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.DRAFT


def test_manager_creates_a_crm_filter_campaign_and_its_load_is_queued(client, portal):
    body = {
        "name": "Cold leads",
        "source": "crm_filter",
        "entity_type_id": 1,
        "filter": {"=stageId": "NEW"},
        "agents": [1, 2],
        "timezone": "Europe/Kyiv",
        "window_start": "10:00",
        "window_end": "18:30",
        "max_attempts": 4,
        "do_not_call": ["+380 50 111 0001"],
    }
    response = client.post(
        "/bitrix/actions/campaigns/",
        json.dumps(body),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 201
    campaign = Campaign.objects.get(pk=response.json()["campaign"]["id"])
    assert campaign.source_params == {"entity_type_id": 1, "filter": {"=stageId": "NEW"}}
    assert campaign.do_not_call == ["380501110001"]
    assert campaign.max_attempts == 4
    assert campaign.manager_user_id == 1
    assert sorted(campaign.agents.values_list("bitrix_user_id", flat=True)) == [1, 2]
    assert campaign.load_state == Campaign.LoadState.LOADING
    assert Job.objects.filter(kind=services.KIND_LOAD, payload__campaign_id=campaign.pk).exists()


def test_a_bad_create_form_names_every_field_and_stores_nothing(client, portal):
    body = {
        "name": "",
        "source": "crm_filter",
        "entity_type_id": "lead",
        "agents": ["x"],
        "timezone": "Mars/Olympus",
        "window_start": "25",
        "max_attempts": 0,
        "do_not_call": ["call me"],
    }
    response = client.post(
        "/bitrix/actions/campaigns/",
        json.dumps(body),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {
        "name",
        "entity_type_id",
        "agents",
        "timezone",
        "window_start",
        "max_attempts",
        "do_not_call",
    }
    assert not Campaign.objects.exists()


def test_csv_upload_adds_numbers_deduped_with_a_header_skipped(client, portal, campaign):
    csv_body = "phone,name\n+380501110002,Olha\n+380671234567,Ivan\nnot a number,Bad\n"
    response = client.post(
        f"/bitrix/actions/campaigns/{campaign.pk}/csv/",
        csv_body,
        content_type="text/csv",
        **token(portal),
    )
    assert response.json() == {"added": 1, "duplicate": 1, "invalid": 1}
    assert CampaignItem.objects.filter(phone="380671234567", state="pending").exists()
    empty = client.post(
        f"/bitrix/actions/campaigns/{campaign.pk}/csv/",
        "phone\n",
        content_type="text/csv",
        **token(portal),
    )
    assert empty.status_code == 400
