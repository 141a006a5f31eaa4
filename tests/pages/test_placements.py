"""CRM detail tab (this entity's calls) and the call card tab (live sync state)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from integration import jobs
from integration.bitrix import users as bitrix_users
from integration.calls.models import Call, CallSync
from tests.integration.bitrix.fixtures import REST, ok
from tests.pages.conftest import enter, fake_profile, token

pytestmark = pytest.mark.django_db(transaction=True)


def sync(portal, *, entity=("LEAD", 5), call_id="externalCall.1", **fields):
    call = Call.objects.create(
        portal=portal,
        unitalk_call_id=f"u-{call_id}",
        direction=Call.Direction.IN,
        status=Call.Status.ENDED,
        state="ANSWER",
        started_at=timezone.now(),
        talk_seconds=42,
    )
    return CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=call,
        bitrix_call_id=call_id,
        stage=fields.pop("stage", CallSync.Stage.FINISHED),
        crm_entity_type=entity[0],
        crm_entity_id=entity[1],
        phone_number="380501112233",
        **fields,
    )


def test_crm_tab_lists_only_this_entitys_calls(client, portal, rsps):
    # given
    sync(portal, record_url="https://drive.example/rec.mp3")
    sync(portal, entity=("LEAD", 6), call_id="externalCall.2")
    sync(portal, entity=("DEAL", 5), call_id="externalCall.3")
    fake_profile(rsps, user_id="2", admin=False)
    # when
    response = enter(
        client,
        portal,
        "/bitrix/placement/",
        PLACEMENT="CRM_LEAD_DETAIL_TAB",
        PLACEMENT_OPTIONS=json.dumps({"ID": "5"}),
    )
    # then
    html = response.content.decode()
    assert html.count("<tr data-sync=") == 1
    assert 'src="https://drive.example/rec.mp3"' in html
    assert "42 sec" in html


def test_crm_tab_does_not_show_another_portals_calls(client, portal, other_portal):
    sync(other_portal)
    response = client.get("/bitrix/actions/crm-calls/?type=LEAD&id=5", **token(portal))
    assert response.json()["calls"] == []


def test_crm_tab_shows_the_sync_error(client, portal):
    sync(portal, stage=CallSync.Stage.FAILED, last_error="crm: ACCESS_DENIED")
    [call] = client.get("/bitrix/actions/crm-calls/?type=LEAD&id=5", **token(portal)).json()[
        "calls"
    ]
    assert (call["stage"], call["error"]) == ("failed", "crm: ACCESS_DENIED")


def test_call_card_answers_the_live_state_of_its_call(client, portal):
    row = sync(portal, stage=CallSync.Stage.REGISTERED)
    first = client.get("/bitrix/actions/call-card/?call_id=externalCall.1", **token(portal))
    CallSync.objects.filter(pk=row.pk).update(stage=CallSync.Stage.RECORDED)
    second = client.get("/bitrix/actions/call-card/?call_id=externalCall.1", **token(portal))
    assert first.json()["call"]["stage"] == "registered"
    assert second.json()["call"]["stage"] == "recorded"


def test_call_card_of_another_portals_call_is_empty(client, portal, other_portal):
    sync(other_portal)
    response = client.get("/bitrix/actions/call-card/?call_id=externalCall.1", **token(portal))
    assert response.json() == {"call": None}


def test_call_card_placement_renders_with_its_call_id(client, portal, rsps):
    sync(portal, stage=CallSync.Stage.REGISTERED)
    fake_profile(rsps)
    response = enter(
        client,
        portal,
        "/bitrix/placement/",
        PLACEMENT="CALL_CARD",
        PLACEMENT_OPTIONS=json.dumps({"CALL_ID": "externalCall.1"}),
    )
    html = response.content.decode()
    assert 'data-placement="CALL_CARD"' in html
    assert 'data-call-id="externalCall.1"' in html
    assert "in Bitrix24, in progress" in html


def test_user_refresh_job_fills_the_directory_used_for_validation(portal, rsps):
    rsps.post(
        REST + "user.get",
        json=ok([{"ID": "1", "NAME": "Anna", "LAST_NAME": "Admin"}, {"ID": "2", "NAME": "Oleg"}]),
    )
    job = bitrix_users.users_refresh_enqueue(portal=portal)
    jobs.job_execute(job_id=job.pk)
    assert bitrix_users.users_directory(portal=portal) == {1: "Anna Admin", 2: "Oleg"}
