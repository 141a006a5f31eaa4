"""A small campaign end to end: sandbox portal CRM + Unitalk over real HTTP, the app as gunicorn
+ a real Celery worker + beat. Six contacts, two agents: every number is dialled once from an
agent's line, answered, logged in Bitrix24, and the campaign finishes by itself."""

from __future__ import annotations

from collections import Counter
from datetime import time

import pytest

from integration.agents.models import AgentState, State
from integration.bitrix import binding
from integration.calls.models import CallSync, FailedCall
from integration.campaigns import services
from integration.campaigns.models import Attempt, Campaign, CampaignItem
from tests.e2e.test_agents_status import AGENT_ENV
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Agents are polled as in production, only faster (docs/agents.md §5.1); the dialer asks their
#: presence before every number.
ENV = {**AGENT_ENV, "CAMPAIGN_TICK_S": "1"}


def _available(user_id: int) -> bool:
    return AgentState.objects.filter(bitrix_user_id=user_id, state=State.AVAILABLE).exists()


def _clock_in(world, *user_ids: int) -> None:
    """The agents open their work day in the portal and the app's poll sees it."""
    for user_id in user_ids:
        world.bx(f"portals/{world.portal.member_id}/workday", {"user_id": user_id, "op": "open"})
    for user_id in user_ids:
        wait_until(
            lambda u=user_id: _available(u), timeout=30, message=f"agent {user_id} available"
        )


def test_a_crm_filter_campaign_with_two_agents_dials_every_contact_once(tmp_path, settings):
    with call_world(tmp_path, settings, env=ENV) as world:
        # given: six contacts in the portal's CRM, a campaign over contacts with agents 1 and 2,
        # both clocked in
        member = world.portal.member_id
        _clock_in(world, 1, 2)
        world.bx(
            f"portals/{member}/crm-seed",
            {"entity_type_id": 3, "count": 6, "phone_from": "380501230001",
             "fields": {"NAME": "Client {n}"}},
        )  # fmt: skip
        campaign = services.campaign_create(
            portal=world.portal,
            name="E2E",
            agent_user_ids=[1, 2],
            source=Campaign.Source.CRM_FILTER,
            source_params={"entity_type_id": 3, "filter": {}},
            timezone="UTC",
            window_start=time(0, 0),
            window_end=time(23, 59, 59),
            wrap_up_s=0,
        )

        # when: the manager loads and starts it
        services.campaign_load_enqueue(campaign=campaign)
        wait_until(
            lambda: CampaignItem.objects.filter(campaign=campaign).count() == 6,
            timeout=60,
            message="the contacts to be loaded",
        )
        services.campaign_start(campaign=campaign)

        # then: it finishes by itself with every number reached
        wait_until(
            lambda: Campaign.objects.filter(pk=campaign.pk, state="finished").exists(),
            timeout=180,
            message="the campaign to finish",
        )
        assert set(CampaignItem.objects.values_list("state", flat=True)) == {"done"}
        attempts = list(Attempt.objects.filter(item__campaign=campaign))
        assert len(attempts) == 6
        assert Counter(a.item_id for a in attempts).most_common(1)[0][1] == 1
        assert {a.agent_user_id for a in attempts} == {1, 2}
        # logged in Bitrix24 like any call, bound to the contact
        wait_until(
            lambda: (
                CallSync.objects.filter(
                    origin=CallSync.Origin.CAMPAIGN,
                    stage__in=(CallSync.Stage.FINISHED, CallSync.Stage.RECORDED),
                ).count()
                == 6
            ),
            timeout=90,
            message="the campaign calls to be finished in Bitrix24",
        )
        finished = world.portal_state()["finished"]
        assert len(finished) == 6
        assert {f["CALL_FAILED_CODE"] for f in finished.values()} == {"200"}


def test_an_agent_whose_work_day_is_not_open_is_never_offered_a_campaign_call(tmp_path, settings):
    with call_world(tmp_path, settings, env=ENV) as world:
        # given: agent 1 clocked in, agent 2's work day closed (PAUSED(day_closed))
        member = world.portal.member_id
        _clock_in(world, 1)
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "close"})
        wait_until(
            lambda: AgentState.objects.filter(bitrix_user_id=2, state=State.PAUSED).exists(),
            timeout=30,
            message="agent 2 paused",
        )
        world.bx(
            f"portals/{member}/crm-seed",
            {"entity_type_id": 3, "count": 3, "phone_from": "380501240001",
             "fields": {"NAME": "Client {n}"}},
        )  # fmt: skip
        campaign = services.campaign_create(
            portal=world.portal,
            name="E2E presence",
            agent_user_ids=[1, 2],
            source=Campaign.Source.CRM_FILTER,
            source_params={"entity_type_id": 3, "filter": {}},
            timezone="UTC",
            window_start=time(0, 0),
            window_end=time(23, 59, 59),
            wrap_up_s=0,
        )
        services.campaign_load_enqueue(campaign=campaign)
        wait_until(
            lambda: CampaignItem.objects.filter(campaign=campaign).count() == 3,
            timeout=60,
            message="the contacts to be loaded",
        )

        # when: the campaign runs to its end
        services.campaign_start(campaign=campaign)
        wait_until(
            lambda: Campaign.objects.filter(pk=campaign.pk, state="finished").exists(),
            timeout=180,
            message="the campaign to finish",
        )

        # then: every number went to agent 1; agent 2 was never dialled
        attempts = list(Attempt.objects.filter(item__campaign=campaign))
        assert len(attempts) == 3
        assert {a.agent_user_id for a in attempts} == {1}
        assert set(CampaignItem.objects.values_list("state", flat=True)) == {"done"}


def test_the_add_to_campaign_robot_enrols_a_lead_that_is_then_dialled(tmp_path, settings):
    with call_world(tmp_path, settings, env=ENV) as world:
        # given: the app installed (its robot registered with the portal), a lead, a campaign
        member = world.portal.member_id
        robots = world.portal_state().get("robots") or {}
        assert binding.ROBOT_CODE in robots, robots
        seeded = world.bx(
            f"portals/{member}/crm-seed",
            {"entity_type_id": 1, "count": 1, "phone_from": "380501250001",
             "fields": {"TITLE": "Robot lead"}},
        )  # fmt: skip
        campaign = services.campaign_create(
            portal=world.portal,
            name="E2E robot",
            agent_user_ids=[1],
            timezone="UTC",
            window_start=time(0, 0),
            window_end=time(23, 59, 59),
            wrap_up_s=0,
        )
        _clock_in(world, 1)
        services.campaign_start(campaign=campaign)

        # when: a pipeline's robot runs on the lead, twice (the number must not double)
        for _ in range(2):
            world.bx(
                f"portals/{member}/robot-run",
                {"code": binding.ROBOT_CODE, "entity_type": "LEAD",
                 "entity_id": str(seeded["ids"][0]),
                 "properties": {binding.ROBOT_PROPERTY: str(campaign.pk)}},
            )  # fmt: skip

        # then: the lead's number is enrolled once and dialled from agent 1's line
        wait_until(
            lambda: CampaignItem.objects.filter(campaign=campaign, state="done").exists(),
            timeout=40,
            message="the robot's lead to be dialled",
        )
        assert CampaignItem.objects.filter(campaign=campaign).count() == 1
        item = CampaignItem.objects.get(campaign=campaign)
        assert (item.entity_type, item.phone) == ("LEAD", "380501250001")
        assert [a.agent_user_id for a in Attempt.objects.filter(item=item)] == [1]


def test_a_missed_call_to_a_dialling_agent_is_their_next_dial_and_resolves_once(tmp_path, settings):
    """docs/routing.md "Callbacks in the dialer": a missed inbound call on Oleg's line while
    Oleg dials a running campaign → the next number the dialer gives Oleg is the caller's;
    answered → the missed-call item resolves, with one attempt and one call logged."""
    with call_world(tmp_path, settings, env=ENV) as world:
        # given: Anna and Oleg clocked in, dialling a campaign fed one by one (no numbers yet)
        _clock_in(world, 1, 2)
        campaign = services.campaign_create(
            portal=world.portal,
            name="E2E callbacks",
            agent_user_ids=[1, 2],
            source=Campaign.Source.MANUAL,
            timezone="UTC",
            window_start=time(0, 0),
            window_end=time(23, 59, 59),
            wrap_up_s=0,
        )
        services.campaign_start(campaign=campaign)

        # when: a client calls Oleg's line 102 and nobody answers
        world.ut("calls", {"from": "380509998877", "line": "102", "outcome": "noanswer"})

        # then: the dialer calls the client back from Oleg's line, and the item resolves
        wait_until(
            lambda: FailedCall.objects.filter(
                kind=FailedCall.Kind.MISSED, state=FailedCall.State.RESOLVED
            ).exists(),
            timeout=120,
            message="the missed call to be called back by the dialer",
        )
        item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
        assert (item.phone_number, item.owner_user_id) == ("380509998877", 2)
        callback = CampaignItem.objects.get(failed_call=item)
        wait_until(
            lambda: CampaignItem.objects.filter(pk=callback.pk, state="done").exists(),
            timeout=30,
            message="the callback item to be settled",
        )
        [attempt] = Attempt.objects.all()
        assert (attempt.item_id, attempt.agent_user_id, attempt.outcome) == (
            callback.pk,
            2,
            "ANSWER",
        )
        assert attempt.agent.campaign_id == campaign.pk
        dials = CallSync.objects.filter(origin=CallSync.Origin.CAMPAIGN)
        assert [(d.user_id, d.phone_number) for d in dials] == [(2, "380509998877")]
        assert item.resolution == f"called back (call {attempt.call_sync_id})"
        # logged once in Bitrix24: one finished outgoing call to the number
        outgoing = [
            f
            for f in world.portal_state()["finished"].values()
            if f["INCOMING"] == "1" and str(f["PHONE_NUMBER"]).lstrip("+") == "380509998877"
        ]
        assert len(outgoing) == 1, outgoing
