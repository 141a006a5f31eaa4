"""How far behind the workers are: due jobs and the age of the oldest, per queue (lane).

A job is due when it is pending or retrying with `next_attempt_at` in the past, or running with
an expired lease (its worker is gone, docs/pipeline.md). Its queue is the one its kind is
registered with (`integration.jobs.register(queue=...)`), else Celery's default queue; kinds
no process knows (an old row after an upgrade) count under the default queue too.
Read by readiness (/readyz) and the metrics endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from integration import jobs
from integration.models import Job


@dataclass
class Lane:
    due: int = 0
    oldest_due_at: datetime | None = None

    def oldest_due_s(self, now: datetime) -> float:
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_due_at).total_seconds())


def queue_of(kind: str) -> str:
    """The queue (lane) a job kind runs on."""
    registered = jobs._registry.get(kind)
    return getattr(registered, "queue", None) or settings.CELERY_TASK_DEFAULT_QUEUE


def known_queues() -> list[str]:
    return sorted({queue_of(kind) for kind in jobs.registered_kinds()} | {queue_of("")})


def jobs_backlog(*, now: datetime | None = None) -> dict[str, Lane]:
    """Every known queue with its due jobs (two indexed aggregate queries)."""
    now = now or timezone.now()
    lanes = {queue: Lane() for queue in known_queues()}
    waiting = (
        Job.objects.filter(
            state__in=[Job.State.PENDING, Job.State.RETRYING], next_attempt_at__lte=now
        )
        .values("kind")
        .annotate(n=Count("pk"), oldest=Min("next_attempt_at"))
    )
    abandoned = (
        Job.objects.filter(Q(state=Job.State.RUNNING, lease_expires_at__lt=now))
        .values("kind")
        .annotate(n=Count("pk"), oldest=Min("lease_expires_at"))
    )
    for row in [*waiting, *abandoned]:
        lane = lanes.setdefault(queue_of(row["kind"]), Lane())
        lane.due += row["n"]
        if lane.oldest_due_at is None or row["oldest"] < lane.oldest_due_at:
            lane.oldest_due_at = row["oldest"]
    return lanes
