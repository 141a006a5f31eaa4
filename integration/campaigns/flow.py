"""The autodialer as one table (docs/pipeline.md, docs/agents.md §5.2).

| kind              | runs                        | on success / follows                 | when it dies                 |
|-------------------|-----------------------------|--------------------------------------|------------------------------|
| campaign.load     | sources.campaign_load       | items enrolled; the tick may dial    | load error on the campaign   |
| campaign.tick     | tick.campaign_tick          | call.dial per free agent (a callback assigned to them first, callbacks.py); next tick | retried (next tick anyway)   |
| campaign.comment  | timeline comment of attempt | —                                    | — (the attempt row has it)   |
| campaign.todo     | crm.activity.todo.add       | a to-do for the item's responsible   | — (the item row has it)      |
| campaign.robot    | robot.robot_run_process     | the CRM item's phones enrolled       | the stored run marked failed |
| (unitalk.webhook) | on settling: outcomes.call_ended | CALL_END settles the attempt, wakes the tick | — |
| (call.dial)       | on dying: the attempt is DIAL_FAILED | number requeued, not charged | — |

Importing this module is the registration (CampaignsConfig.ready).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from integration import jobs
from integration.bitrix import client, crm
from integration.calls import dial, merge, takeover
from integration.calls.models import Call, CallSync
from integration.campaigns import outcomes, robot, services, sources, tick
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.models import Job


def _load_dead(job: Job, exc: BaseException) -> None:
    services.campaign_loaded(campaign_id=job.payload["campaign_id"], error=str(exc))


@jobs.register(services.KIND_LOAD, on_dead=_load_dead)
def campaign_load(job: Job) -> dict[str, Any]:
    campaign = Campaign.objects.select_related("portal").get(pk=job.payload["campaign_id"])
    counts = sources.campaign_load(campaign=campaign)
    services.campaign_loaded(campaign_id=campaign.pk)
    if campaign.state == Campaign.State.RUNNING:
        services.tick_enqueue(campaign=campaign, reason="loaded")
    return counts


@jobs.register(services.KIND_TICK)
def campaign_tick(job: Job) -> dict[str, Any]:
    return tick.campaign_tick(campaign_id=job.payload["campaign_id"])


def _robot_dead(job: Job, exc: BaseException) -> None:
    robot.robot_run_failed(event_id=job.payload["event_id"], error=str(exc))


@jobs.register(robot.KIND_ROBOT, on_dead=_robot_dead)
def campaign_robot(job: Job) -> dict[str, Any]:
    return robot.robot_run_process(event_id=job.payload["event_id"])


@jobs.register(services.KIND_COMMENT)
def campaign_comment(job: Job) -> dict[str, Any]:
    attempt = Attempt.objects.select_related("item__campaign__portal").get(
        pk=job.payload["attempt_id"]
    )
    item, campaign = attempt.item, attempt.item.campaign
    if not item.entity_id:
        return {"skipped": "no CRM entity"}
    text = (
        f"Campaign {campaign.name}, attempt {attempt.number}/{campaign.max_attempts}, "
        f"{attempt.outcome}"
    )
    comment_id = crm.timeline_comment_add(
        campaign.portal, entity_type=item.entity_type, entity_id=item.entity_id, comment=text
    )
    return {"comment": comment_id}


@jobs.register(services.KIND_TODO)
def campaign_todo(job: Job) -> dict[str, Any]:
    """A number not reached after max attempts: a to-do for its responsible user, tomorrow."""
    item = CampaignItem.objects.select_related("campaign__portal").get(pk=job.payload["item_id"])
    campaign = item.campaign
    deadline = (timezone.now() + timedelta(days=1)).replace(microsecond=0).isoformat()
    params: dict[str, Any] = {
        "ownerTypeId": item.entity_type_id or sources.type_id_for(item.entity_type),
        "ownerId": item.entity_id,
        "deadline": deadline,
        "title": f"Campaign {campaign.name}: {item.phone} not reached",
        "description": f"{item.reason}. Last outcome: {item.last_outcome}.",
    }
    if item.responsible_user_id:
        params["responsibleId"] = item.responsible_user_id
    result = client.call(campaign.portal, "crm.activity.todo.add", params)
    return {"todo": result}


def _follow(job: Job, state: str) -> None:
    """CALL_END of a campaign call settles its attempt; a dead campaign dial requeues the number."""
    if job.kind == merge.KIND_WEBHOOK and state == Job.State.SUCCEEDED:
        result = job.result or {}
        call_id = result.get("call")
        # The merge says whether the call ended (calls/merge.py): ringing and answer read nothing.
        if not isinstance(call_id, int) or not result.get("ended"):
            return
        call = Call.objects.filter(pk=call_id, ended=True).select_related("sync").first()
        if call is not None:
            outcomes.call_ended(call=call)
    elif job.kind == dial.KIND_DIAL and state == Job.State.DEAD:
        attempt = Attempt.objects.filter(
            call_sync_id=job.payload.get("sync_id"), outcome=""
        ).first()
        if attempt is not None:
            outcomes.attempt_finish(attempt_id=attempt.pk, outcome=Attempt.Outcome.DIAL_FAILED)


jobs.on_settled(_follow)


@takeover.on_dial_check
def _agent_still_available(*, row: CallSync) -> str:
    """A campaign dial waits in its job (retries under Unitalk faults, a worker lost): the agent
    the tick chose may have paused meanwhile. Ask presence again right before directCall; not
    available → the attempt is settled as not dialled (the number requeued, not charged)."""
    if row.origin != CallSync.Origin.CAMPAIGN:
        return ""
    attempt = (
        Attempt.objects.filter(call_sync=row, outcome="").select_related(
            "item__campaign__portal", "agent__campaign__portal"
        )
    ).first()
    if attempt is None:
        return ""
    agent = attempt.agent or (
        CampaignAgent.objects.filter(
            campaign=attempt.item.campaign, bitrix_user_id=attempt.agent_user_id
        ).first()
    )
    campaign = agent.campaign if agent is not None else attempt.item.campaign
    if agent is None or tick.campaign_agent_available(
        campaign=campaign, agent=agent, now=timezone.now()
    ):
        return ""
    outcomes.attempt_finish(attempt_id=attempt.pk, outcome=Attempt.Outcome.SKIPPED)
    return f"agent {attempt.agent_user_id} is no longer available"
