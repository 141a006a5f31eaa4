"""Call outcomes back into campaigns: the item's retry delay or final state, the agent's
wrap-up and pause, the timeline comment (docs/agents.md §5.2).

Fed from the flow table (campaigns/flow.py): when a Unitalk webhook job settles with an ended
call (CALL_END), when a campaign dial dies, and by the tick's sweep of attempts whose CALL_END
was lost (merged later from history/get, or never placed).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integration import jobs
from integration.calls.models import Call
from integration.campaigns import services
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.unitalk import names

logger = logging.getLogger(__name__)

#: Outcomes that are the client's, and count against max attempts.
CHARGED = {"ANSWER", "NOANSWER", "BUSY", "FAIL", "CHANUNAVAIL"}
#: Two unanswered operator legs in a row pause the agent (docs/agents.md §5.2, mikopbx #1043).
LEG_FAILURES_PAUSE = 2
#: An outcome of the line, not of the client: the number goes back to the queue after this.
REQUEUE_DELAY_S = 60


def call_outcome(call: Call) -> str:
    """The attempt's outcome from an ended Unitalk call."""
    state = (call.state or "").upper()
    if state == names.STATE_ANSWER:
        return Attempt.Outcome.ANSWER
    if (
        state in names.OPERATOR_LEG_FAILED_STATES
        and not call.answered_at
        and call.full_seconds == 0
    ):
        return Attempt.Outcome.OPERATOR_NOANSWER
    if state in CHARGED:
        return state
    return Attempt.Outcome.FAIL


def attempt_finish(*, attempt_id: int, outcome: str) -> bool:
    """Settle one attempt once: item, agent, comment job, and a tick wake-up. False if settled."""
    with transaction.atomic():
        won = Attempt.objects.filter(pk=attempt_id, outcome="").update(
            outcome=outcome, finished_at=timezone.now(), charged=outcome in CHARGED
        )
        if not won:
            return False
        attempt = Attempt.objects.select_related(
            "item__campaign__portal", "agent__campaign__portal"
        ).get(pk=attempt_id)
        item, campaign = attempt.item, attempt.item.campaign
        # A callback item belongs to the callbacks campaign but was dialled by another
        # campaign's agent (docs/campaigns.md "Callbacks"): that campaign ticks next.
        dialling = attempt.agent.campaign if attempt.agent is not None else campaign
        _item_settle(item, campaign, outcome)
        _agent_settle(attempt, dialling, outcome)
        if outcome in CHARGED:
            jobs.job_enqueue(
                kind=services.KIND_COMMENT,
                key=f"{services.KIND_COMMENT}:{attempt.pk}",
                portal=campaign.portal,
                subject=f"attempt {attempt.pk}",
                payload={"attempt_id": attempt.pk},
            )
        item.refresh_from_db(fields=["state"])
        if campaign.todo_on_failure and item.state == CampaignItem.State.FAILED and item.entity_id:
            jobs.job_enqueue(
                kind=services.KIND_TODO,
                key=f"{services.KIND_TODO}:{item.pk}",
                portal=campaign.portal,
                subject=f"item {item.pk}",
                payload={"item_id": item.pk},
            )
        if dialling.state == Campaign.State.RUNNING:
            services.tick_enqueue(campaign=dialling, reason="call ended")
    logger.info("campaign attempt settled", extra={"attempt": attempt_id, "outcome": outcome})
    return True


def _item_settle(item: CampaignItem, campaign: Campaign, outcome: str) -> None:
    now = timezone.now()
    update: dict[str, object] = {"last_outcome": outcome}
    if outcome in CHARGED:
        update["attempts"] = F("attempts") + 1
        charged = item.attempts + 1
        if outcome == Attempt.Outcome.ANSWER:
            update |= {"state": CampaignItem.State.DONE, "reason": "", "next_at": None}
        elif charged >= campaign.max_attempts:
            update |= {
                "state": CampaignItem.State.FAILED,
                "reason": f"max attempts reached ({charged}/{campaign.max_attempts})",
                "next_at": None,
            }
        else:
            delay = int((campaign.retry_delays or {}).get(outcome, 3600))
            update |= {
                "state": CampaignItem.State.PENDING,
                "next_at": now + timedelta(seconds=delay),
            }
    else:
        # Not the client's doing (line or agent): back to the queue, no attempt charged.
        update |= {
            "state": CampaignItem.State.PENDING,
            "next_at": now + timedelta(seconds=REQUEUE_DELAY_S),
            "reason": Attempt.Outcome(outcome).label if outcome in Attempt.Outcome.values else "",
        }
    CampaignItem.objects.filter(pk=item.pk, state=CampaignItem.State.CALLING).update(**update)


def _agent_settle(attempt: Attempt, campaign: Campaign, outcome: str) -> None:
    agent = attempt.agent or (
        CampaignAgent.objects.filter(
            campaign=campaign, bitrix_user_id=attempt.agent_user_id
        ).first()
    )
    if agent is None:
        return
    failures = agent.leg_failures + 1 if outcome == Attempt.Outcome.OPERATOR_NOANSWER else 0
    update: dict[str, object] = {"free_since": timezone.now(), "leg_failures": failures}
    if failures >= LEG_FAILURES_PAUSE:
        update |= {"paused": True, "pause_reason": f"did not pick up {failures} calls in a row"}
    # Conditional: the agent is released only from this attempt, never from a newer one.
    released = CampaignAgent.objects.filter(pk=agent.pk, current_attempt_id=attempt.pk).update(
        current_attempt=None, **update
    )
    if released and failures >= LEG_FAILURES_PAUSE:
        # The issue asks that the agent and the manager be told (docs/campaigns.md).
        services.agent_pause_notify(agent=agent, campaign=campaign, failures=failures)


def attempt_for_call(call: Call) -> Attempt | None:
    """The live campaign attempt a Unitalk call belongs to (by its CallSync), if any."""
    sync = getattr(call, "sync", None)
    if sync is None:
        return None
    return Attempt.objects.filter(call_sync=sync, outcome="").first()


def call_ended(*, call: Call) -> bool:
    """CALL_END (or a reconciled end) of a campaign call: settle its attempt."""
    if not call.ended:
        return False
    attempt = attempt_for_call(call)
    if attempt is None:
        return False
    return attempt_finish(attempt_id=attempt.pk, outcome=call_outcome(call))
