"""A small campaign end to end: sandbox portal CRM + Unitalk over real HTTP, the app as gunicorn
+ a real Celery worker + beat. Six contacts, two agents: every number is dialled once from an
agent's line, answered, logged in Bitrix24, and the campaign finishes by itself."""

from __future__ import annotations

from collections import Counter
from datetime import time

import pytest

from integration.calls.models import CallSync
from integration.campaigns import services
from integration.campaigns.models import Attempt, Campaign, CampaignItem
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_crm_filter_campaign_with_two_agents_dials_every_contact_once(tmp_path, settings):
    with call_world(tmp_path, settings, env={"CAMPAIGN_TICK_S": "1"}) as world:
        # given: six contacts in the portal's CRM, a campaign over contacts with agents 1 and 2
        member = world.portal.member_id
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
