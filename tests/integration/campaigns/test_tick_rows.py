"""Tick rows do not pile up: a running campaign ticks every CAMPAIGN_TICK_S (~29,000 ticks a day
at 3 s), and each tick prunes its campaign's older succeeded tick jobs (docs/campaigns.md,
"Tick rows"). Measured before (pruning off) and after, on the same run of ticks."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integration import jobs
from integration.campaigns import services
from integration.campaigns.models import Campaign, CampaignAgent
from integration.models import Job, JobAttempt
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    call_settings,
    connection,
    portal,
)
from tests.integration.campaigns.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    campaign,
    crm,
)

pytestmark = pytest.mark.django_db

TICKS = 60
KEEP = 5


def _running_without_agents(campaign, crm) -> None:
    """A running campaign with a number to call and nobody free: every tick waits (and stays
    short of the auto-pause), as a real campaign does between calls."""
    crm.add(1, 1, "+380501110001")
    services.items_add(
        campaign=campaign,
        entries=[
            services.Entry(
                raw_phone="+380501110001", entity_type="LEAD", entity_type_id=1, entity_id=1
            )
        ],
    )
    CampaignAgent.objects.filter(campaign=campaign).update(paused=True)
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)


def _tick_rows(campaign) -> tuple[int, int]:
    """(succeeded tick jobs, their attempt rows) of this campaign."""
    prefix = services.tick_key_prefix(campaign_id=campaign.pk)
    rows = Job.objects.filter(
        kind=services.KIND_TICK, state=Job.State.SUCCEEDED, idempotency_key__startswith=prefix
    )
    return rows.count(), JobAttempt.objects.filter(job__in=rows).count()


def _run_ticks(campaign, n: int, *, start: int) -> None:
    """n ticks through the job engine, one per slot (as the period and wake-ups make them)."""
    prefix = services.tick_key_prefix(campaign_id=campaign.pk)
    for slot in range(start, start + n):
        job = jobs.job_enqueue(
            kind=services.KIND_TICK,
            key=f"{prefix}{slot}",
            portal=campaign.portal,
            payload={"campaign_id": campaign.pk},
        )
        assert jobs.job_execute(job_id=job.pk) == Job.State.SUCCEEDED


def test_ticks_leave_a_bounded_number_of_rows_measured_before_and_after(
    campaign, crm, settings, monkeypatch
):
    settings.CAMPAIGN_TICK_KEEP = KEEP
    _running_without_agents(campaign, crm)

    # Before: the same ticks with pruning switched off leave a row (and an attempt) each
    with monkeypatch.context() as patch:
        patch.setattr(services, "ticks_prune", lambda *, campaign_id: 0)
        _run_ticks(campaign, TICKS, start=1)
    before = _tick_rows(campaign)

    # After: with pruning, the next ticks work the pile off and keep it bounded
    _run_ticks(campaign, TICKS, start=1 + TICKS)
    after = _tick_rows(campaign)

    print(f"tick rows: before={before} after={after} (ticks={TICKS} each, keep={KEEP})")
    assert before == (TICKS, TICKS)
    # the newest KEEP succeeded before the last tick ran, plus the last tick itself
    assert after == (KEEP + 1, KEEP + 1)
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING  # the ticks really ran the campaign


def test_failed_and_open_tick_jobs_and_other_campaigns_ticks_are_never_pruned(
    campaign, crm, settings
):
    settings.CAMPAIGN_TICK_KEEP = 0
    _running_without_agents(campaign, crm)
    prefix = services.tick_key_prefix(campaign_id=campaign.pk)
    dead = Job.objects.create(
        kind=services.KIND_TICK, idempotency_key=f"{prefix}dead", state=Job.State.DEAD
    )
    other = Job.objects.create(
        kind=services.KIND_TICK,
        idempotency_key=services.tick_key_prefix(campaign_id=campaign.pk + 1000) + "1",
        state=Job.State.SUCCEEDED,
    )
    # a campaign whose id starts with this one's digits (prefix ends with ':')
    similar = Job.objects.create(
        kind=services.KIND_TICK,
        idempotency_key=f"{services.KIND_TICK}:{campaign.pk}0:1",
        state=Job.State.SUCCEEDED,
    )

    _run_ticks(campaign, 3, start=1)

    assert Job.objects.filter(pk__in=[dead.pk, other.pk, similar.pk]).count() == 3
    # keep=0: only the tick that ran last is left of this campaign's succeeded ones
    assert _tick_rows(campaign) == (1, 1)


def test_a_call_ends_wake_up_after_this_slots_tick_ran_is_a_new_tick(campaign, crm):
    # given a running campaign whose tick for this moment has already run
    _running_without_agents(campaign, crm)
    services.tick_enqueue(campaign=campaign, reason="call ended")
    [first] = Job.objects.filter(kind=services.KIND_TICK)
    jobs.job_execute(job_id=first.pk)

    # when another call ends a moment later (the same time slot), then a tick runs again:
    # the free agent does not wait for the next period
    services.tick_enqueue(campaign=campaign, reason="call ended")
    due = Job.objects.filter(
        kind=services.KIND_TICK, state=Job.State.PENDING, next_attempt_at__lte=timezone.now()
    )
    assert due.count() == 1
    # and wake-ups while that one still waits merge into it
    services.tick_enqueue(campaign=campaign, reason="call ended")
    assert due.count() == 1
