"""Campaign calls through the call pipeline: the Unitalk webhook of CALL_END settles the attempt
(flow table hook) and wakes the tick; lost ends and lost dial answers are swept."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.utils import timezone

from integration.calls.models import CallSync
from integration.campaigns import services, sweep, tick
from integration.campaigns.models import Attempt, Campaign, CampaignItem
from integration.campaigns.services import Entry
from integration.models import Job
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    UNITALK,
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


def _start(campaign, crm) -> Attempt:
    crm.add(1, 1, "+380671112233")
    services.items_add(
        campaign=campaign,
        entries=[
            Entry(raw_phone="+380671112233", entity_type="LEAD", entity_type_id=1, entity_id=1)
        ],
    )
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)
    tick.campaign_tick(campaign_id=campaign.pk)
    return Attempt.objects.select_related("call_sync").get()


def test_call_end_webhook_settles_the_attempt_registers_the_call_and_wakes_the_tick(
    client, campaign, connection, crm, dials
):
    attempt = _start(campaign, crm)
    run_jobs()
    [dial] = dials
    body = copy.deepcopy(json.loads((PAYLOADS / "call_end_out_noanswer.json").read_text()))
    body["call"].update(meta=dial["meta"], **{"from": "101"})

    response = client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(body),
        content_type="application/json",
    )
    run_jobs()

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert attempt.outcome == "NOANSWER"
    item = CampaignItem.objects.get()
    assert (item.state, item.attempts, item.last_outcome) == ("pending", 1, "NOANSWER")
    row = CallSync.objects.get(pk=attempt.call_sync_id)
    assert row.call is not None
    assert row.call.meta == dial["meta"]
    assert row.stage == CallSync.Stage.FINISHED  # registered and finished like any call
    [register] = crm.registers
    assert (register["CRM_ENTITY_TYPE"], register["CRM_ENTITY_ID"]) == ("LEAD", "1")
    assert "CALL_LIST_ID" not in register  # not a call-list source
    texts = [c["COMMENT"] for c in crm.comments]
    assert "Campaign Spring leads, attempt 1/3, NOANSWER" in texts
    wake = Job.objects.filter(kind=services.KIND_TICK, subject__contains="call ended")
    assert wake.exists()


def test_a_call_list_campaign_registers_its_calls_with_the_call_list_id(
    client, campaign, connection, crm, dials
):
    crm.add(3, 11, "+380671112233")
    services.items_add(
        campaign=campaign,
        entries=[
            Entry(
                raw_phone="+380671112233",
                entity_type="CONTACT",
                entity_type_id=3,
                entity_id=11,
                call_list_id=5,
            )
        ],
    )
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)
    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()
    body = copy.deepcopy(json.loads((PAYLOADS / "call_end_out_noanswer.json").read_text()))
    body["call"].update(meta=dials[0]["meta"], **{"from": "101"})

    client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(body),
        content_type="application/json",
    )
    run_jobs()

    [register] = crm.registers
    assert register["CALL_LIST_ID"] == "5"
    assert (register["CRM_ENTITY_TYPE"], register["CRM_ENTITY_ID"]) == ("CONTACT", "11")


def test_an_end_merged_from_history_is_settled_by_the_next_tick(campaign, crm, dials):
    attempt = _start(campaign, crm)
    make_call(campaign.portal, direction="out", state="BUSY", meta=attempt.call_sync.dial_meta)

    tick.campaign_tick(campaign_id=campaign.pk)

    attempt.refresh_from_db()
    assert attempt.outcome == "BUSY"
    assert CampaignItem.objects.get().last_outcome == "BUSY"


def test_a_lost_dial_found_in_history_is_not_dialled_again(campaign, crm, dials, rsps):
    attempt = _start(campaign, crm)
    rsps.add(
        responses.POST,
        f"{UNITALK}/history/get",
        json={
            "status": "Success",
            "count": 1,
            "calls": [{"id": 9, "meta": attempt.call_sync.dial_meta}],
        },
    )
    later = timezone.now() + timedelta(minutes=11)

    swept = sweep.attempts_sweep(campaign=campaign, now=later)

    assert swept == {"settled": 0, "requeued": 0, "released": 0}
    assert CampaignItem.objects.get().state == CampaignItem.State.CALLING
    assert Job.objects.filter(kind="unitalk.reconcile").exists()


def test_a_lost_dial_not_in_history_goes_back_to_the_queue_uncharged(campaign, crm, dials, rsps):
    _start(campaign, crm)
    rsps.add(
        responses.POST,
        f"{UNITALK}/history/get",
        json={"status": "Success", "count": 0, "calls": []},
    )
    later = timezone.now() + timedelta(minutes=11)

    swept = sweep.attempts_sweep(campaign=campaign, now=later)

    assert swept == {"settled": 0, "requeued": 1, "released": 0}
    item = CampaignItem.objects.get()
    assert (item.state, item.attempts, item.last_outcome) == ("pending", 0, "DIAL_FAILED")
