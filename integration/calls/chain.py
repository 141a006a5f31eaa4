"""No message without work: a portal's background drains run as a short chain, not one message
per call (issue 17, docs/pipeline.md "Lanes").

A drain (`call.sync`) finishes up to CALL_DRAIN_BATCH ready calls of its portal in one batch, so
2,000 ended calls need ~80 drains, not 2,000 messages. In the background lane a new `call.sync`
job is therefore only published while fewer than CALL_DRAIN_PARALLEL of the portal's drains are
on their way; the others are kept as rows marked "held". Every drain, when done, marks the held
jobs of the calls it finished as succeeded (their work is done, no message needed) and publishes
the portal's next held job. The row stays the truth: a held job nobody published is sent by the
dispatcher once the portal has no drain on its way any more (integration/jobs.py, held jobs):
one message, not one per row.

Interactive drains (a live call's end) are always published at once: a person is waiting.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from integration import jobs
from integration.core import lanes
from integration.models import Job

KIND_SYNC = "call.sync"
HELD = jobs.HELD
OPEN = jobs.OPEN


def _portal_drains(portal_id: int) -> Q:
    return Q(portal_id=portal_id, kind=KIND_SYNC, state__in=OPEN)


def drain_publish_needed(*, portal_id: int) -> bool:
    """Should a new `call.sync` job of this portal get its own message now?"""
    if lanes.current_lane() == lanes.INTERACTIVE:
        return True
    on_its_way = (
        Job.objects.filter(_portal_drains(portal_id))
        .exclude(payload__held=True)
        .exclude(payload__lane=lanes.INTERACTIVE)
        .count()
    )
    return on_its_way < max(1, settings.CALL_DRAIN_PARALLEL)


def drained_jobs_settle(*, sync_ids: list[int], drained_by: int | None) -> int:
    """The drain finished these calls: their held `call.sync` jobs have nothing left to do and
    never get a message. Published ones are left to run: each finds its call done at once and
    carries the chain on (settling them would drop a link of it)."""
    if not sync_ids:
        return 0
    now = timezone.now()
    return Job.objects.filter(
        kind=KIND_SYNC,
        state__in=OPEN,
        payload__held=True,
        idempotency_key__in=[f"{KIND_SYNC}:{pk}" for pk in sync_ids],
    ).update(
        state=Job.State.SUCCEEDED,
        finished_at=now,
        updated_at=now,
        result={"drained_by_sync": drained_by},
        lease_expires_at=None,
    )


def drain_next(*, portal_id: int) -> bool:
    """Publish the portal's oldest held drain, if any (the chain goes on). Returns whether."""
    job = Job.objects.filter(_portal_drains(portal_id), payload__held=True).order_by("pk").first()
    if job is None:
        return False
    payload = {**job.payload, HELD: False}
    if not Job.objects.filter(pk=job.pk, state__in=OPEN, payload__held=True).update(
        payload=payload
    ):
        return False  # another drain published it first
    job.payload = payload
    jobs.job_send(job=job)
    return True


def held_jobs_release(*, sync_ids: list[int]) -> int:
    """Publish the held jobs of these calls: a batch failed for them, so no other drain takes
    them along (sync_drain skips calls with an error) and each must retry on its own."""
    released = 0
    for job in Job.objects.filter(
        kind=KIND_SYNC,
        state__in=OPEN,
        payload__held=True,
        idempotency_key__in=[f"{KIND_SYNC}:{pk}" for pk in sync_ids],
    ):
        payload = {**job.payload, HELD: False}
        if Job.objects.filter(pk=job.pk, payload__held=True).update(payload=payload):
            job.payload = payload
            jobs.job_send(job=job)
            released += 1
    return released
