"""Callbacks in the dialer (docs/campaigns.md "Callbacks", docs/routing.md "Callbacks in the
dialer"): a missed call for an agent dialling a running campaign is offered to that agent before
any campaign number, once; closed when any answered call reaches the number; nothing changes for
people who dial no campaign."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.utils import timezone

from integration.agents.models import AgentState, Toggle
from integration.calls import failed, missed
from integration.calls import services as call_services
from integration.calls.models import Call, CallSync, FailedCall
from integration.campaigns import services, tick
from integration.campaigns.callbacks import CALLBACK_PRIORITY
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.campaigns.services import Entry
from integration.routing.models import RoutingPolicy
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)
from tests.integration.campaigns.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    campaign,
    crm,
    dials,
)

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).resolve().parents[2] / "payloads" / "unitalk"
CLIENT = "380501112233"  # make_call's default client number


def _enrol(campaign, crm, *phones: str) -> None:
    entries = []
    for n, phone in enumerate(phones, start=1):
        crm.add(1, n, phone)
        entries.append(Entry(raw_phone=phone, entity_type="LEAD", entity_type_id=1, entity_id=n))
    services.items_add(campaign=campaign, entries=entries)


def _running(campaign) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)
    campaign.refresh_from_db()
    return campaign


def _missed(portal, *, line: str = "101") -> FailedCall:
    """A missed inbound call on `line` through the pipeline (owner: the line's user)."""
    call_services.call_changed(
        call=make_call(portal, state="NOANSWER", line=line), event="CALL_END"
    )
    run_jobs()
    return FailedCall.objects.get(kind=FailedCall.Kind.MISSED, phone_number=CLIENT)


def _callbacks() -> list[CampaignItem]:
    return list(CampaignItem.objects.filter(failed_call__isnull=False))


def _away(user_id: int) -> None:
    AgentState.objects.filter(bitrix_user_id=user_id).update(toggle=Toggle.BREAK)


def test_a_missed_call_for_a_dialling_agent_is_offered_to_them_before_any_campaign_number(
    campaign, crm, dials
):
    # given two campaign numbers waiting (older than the missed call) and both agents free
    _enrol(campaign, crm, "+380671110001", "+380671110002")
    _running(campaign)
    _away(5)
    _away(6)
    # when user 5's line misses a call (the owner: line 101's user), then both come back
    item = _missed(campaign.portal)
    AgentState.objects.update(toggle=Toggle.AVAILABLE)
    result = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    # then 5 is rung with the callback, 6 (not its owner) with the first campaign number
    assert result["dialled"] == 2
    by_line = {d["sip"]: d["number"] for d in dials}
    assert by_line["101"] == CLIENT
    assert by_line["102"] == "380671110001"
    [callback] = _callbacks()
    assert callback.failed_call_id == item.pk
    assert (callback.assignee_user_id, callback.priority) == (5, CALLBACK_PRIORITY)
    assert callback.state == CampaignItem.State.CALLING
    assert callback.campaign.source == Campaign.Source.CALLBACKS
    attempt = Attempt.objects.get(item=callback)
    assert attempt.agent.campaign_id == campaign.pk  # dialled by the agent of this campaign


def test_the_callback_item_is_made_once_per_missed_call_item(campaign, crm, dials):
    _running(campaign)
    _away(5)
    item = _missed(campaign.portal)
    # the same number missed again (one open item, another occurrence), and a retried job
    call_services.call_changed(call=make_call(campaign.portal, state="NOANSWER"), event="CALL_END")
    run_jobs()
    missed.missed_handle(sync_id=CallSync.objects.filter(call__isnull=False).first().pk)
    failed.callback_opened(item=item)

    assert FailedCall.objects.filter(kind=FailedCall.Kind.MISSED).count() == 1
    assert len(_callbacks()) == 1
    assert Campaign.objects.filter(source=Campaign.Source.CALLBACKS).count() == 1


def test_a_callback_is_not_offered_to_its_owner_on_a_break_nor_to_a_colleague(campaign, crm, dials):
    _running(campaign)
    _away(5)
    _missed(campaign.portal)

    result = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert result["dialled"] == 0  # 6 is free but the callback is 5's
    assert dials == []
    [callback] = _callbacks()
    assert callback.state == CampaignItem.State.PENDING
    # back from the break, 5 is offered it at the next tick
    AgentState.objects.filter(bitrix_user_id=5).update(toggle=Toggle.AVAILABLE)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()
    assert [(d["sip"], d["number"]) for d in dials] == [("101", CLIENT)]


def test_another_answered_call_to_the_number_closes_the_callback_before_it_is_dialled(
    campaign, crm, dials
):
    _running(campaign)
    _away(5)
    item = _missed(campaign.portal)
    # when a colleague's answered outgoing call reaches the number (a click-to-call)
    call_services.call_changed(
        call=make_call(campaign.portal, direction=Call.Direction.OUT, line="102"),
        event="CALL_END",
    )
    run_jobs()
    AgentState.objects.update(toggle=Toggle.AVAILABLE)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    item.refresh_from_db()
    assert item.state == FailedCall.State.RESOLVED
    [callback] = _callbacks()
    assert callback.state == CampaignItem.State.SKIPPED
    assert callback.reason.startswith("resolved: called back")
    assert dials == []


def test_a_person_resolving_the_missed_call_closes_its_callback(campaign, crm, dials):
    _running(campaign)
    _away(5)
    item = _missed(campaign.portal)

    assert failed.failed_call_resolve(item=item, resolution="called from my mobile", user_id=5)

    [callback] = _callbacks()
    assert (callback.state, callback.reason) == ("skipped", "resolved: called from my mobile")


def test_the_answered_callback_resolves_the_missed_call_once(
    client, campaign, connection, crm, dials
):
    _running(campaign)
    _away(6)
    item = _missed(campaign.portal)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()
    [dial] = dials
    assert dial["number"] == CLIENT
    # when Unitalk reports the callback answered (CALL_END of the directCall, by its meta)
    body = copy.deepcopy(json.loads((PAYLOADS / "call_end_out_noanswer.json").read_text()))
    body["call"].update(
        meta=dial["meta"],
        state="ANSWER",
        secondsTalk=20,
        to=[CLIENT],
        **{"from": "101"},
    )
    response = client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(body),
        content_type="application/json",
    )
    run_jobs()

    assert response.status_code == 200
    item.refresh_from_db()
    assert item.state == FailedCall.State.RESOLVED
    [callback] = _callbacks()
    assert (callback.state, callback.attempts) == ("done", 1)
    [attempt] = Attempt.objects.filter(item=callback)
    assert attempt.outcome == "ANSWER"
    # the agent is free again in their own campaign
    agent = CampaignAgent.objects.get(campaign=campaign, bitrix_user_id=5)
    assert agent.current_attempt_id is None
    assert agent.free_since is not None


def test_a_callback_not_answered_is_not_redialled_and_stays_on_the_list(
    client, campaign, connection, crm, dials
):
    _running(campaign)
    _away(6)
    item = _missed(campaign.portal)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()
    [dial] = dials
    body = copy.deepcopy(json.loads((PAYLOADS / "call_end_out_noanswer.json").read_text()))
    body["call"].update(meta=dial["meta"], to=[CLIENT], **{"from": "101"})
    client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(body),
        content_type="application/json",
    )
    run_jobs()
    CampaignAgent.objects.update(free_since=None)
    tick.campaign_tick(campaign_id=campaign.pk, now=timezone.now())
    run_jobs()

    assert len(dials) == 1
    [callback] = _callbacks()
    assert callback.state == CampaignItem.State.FAILED
    item.refresh_from_db()
    assert item.state == FailedCall.State.OPEN
    assert item.owner_user_id == 5


def test_no_callback_item_for_someone_who_dials_no_campaign(campaign, crm, dials):
    # given a campaign that is not running (a draft), and a line whose user is in no campaign
    _away(5)
    item = _missed(campaign.portal)
    assert item.owner_user_id == 5

    assert _callbacks() == []
    assert not Campaign.objects.filter(source=Campaign.Source.CALLBACKS).exists()


def test_the_portal_setting_keeps_callbacks_off_the_dialer(campaign, crm, dials):
    RoutingPolicy.objects.create(portal=campaign.portal, callbacks_in_dialer=False)
    _running(campaign)
    _away(5)
    _missed(campaign.portal)

    assert _callbacks() == []


def test_a_deleted_owner_keeps_the_callback_on_the_list_with_the_reason(campaign, crm, dials):
    _running(campaign)
    AgentState.objects.filter(bitrix_user_id=5).update(user_missing=True)
    item = _missed(campaign.portal)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    [callback] = _callbacks()
    assert (callback.state, callback.reason) == ("skipped", "user 5 was deleted in Bitrix24")
    item.refresh_from_db()
    assert item.state == FailedCall.State.OPEN
    assert dials == []


def test_an_owner_without_a_line_keeps_the_callback_on_the_list_with_the_reason(
    campaign, crm, dials
):
    # given the default user 9 (who owns calls of unmapped lines) in the campaign, no line
    CampaignAgent.objects.create(campaign=campaign, bitrix_user_id=9)
    _running(campaign)
    item = _missed(campaign.portal, line="109")
    assert item.owner_user_id == 9

    [callback] = _callbacks()
    assert (callback.state, callback.reason) == ("skipped", "user 9 has no Unitalk line")


def test_the_callbacks_campaign_is_not_shown_nor_acted_on(campaign, crm, dials):
    from integration.campaigns import selectors

    _running(campaign)
    _away(5)
    _missed(campaign.portal)
    system = Campaign.objects.get(source=Campaign.Source.CALLBACKS)

    shown = [row["campaign"].pk for row in selectors.campaigns_list(portal=campaign.portal)]
    assert shown == [campaign.pk]
    assert selectors.campaign_get(portal=campaign.portal, campaign_id=system.pk) is None


def test_a_second_dialer_item_for_one_missed_call_is_refused_by_the_database(campaign, crm):
    from django.db import IntegrityError, transaction

    _running(campaign)
    _away(5)
    item = _missed(campaign.portal)
    [callback] = _callbacks()

    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignItem.objects.create(campaign=callback.campaign, phone=CLIENT, failed_call=item)
    # numbers that answer no missed call still merge by phone within a campaign
    CampaignItem.objects.create(campaign=callback.campaign, phone=CLIENT)
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignItem.objects.create(campaign=callback.campaign, phone=CLIENT)


def test_the_callbacks_campaign_never_ticks_by_itself(campaign, crm, dials):
    _running(campaign)
    _away(5)
    _missed(campaign.portal)
    AgentState.objects.update(toggle=Toggle.AVAILABLE)
    system = Campaign.objects.get(source=Campaign.Source.CALLBACKS)

    result = tick.campaign_tick(campaign_id=system.pk)

    assert result == {"skipped": "callbacks have no tick of their own"}
    assert dials == []
