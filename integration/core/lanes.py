"""Lanes: work a person is waiting for never queues behind background work (docs/pipeline.md).

Two Celery queues share one broker: the background lane is `CELERY_TASK_DEFAULT_QUEUE`
("celery"), the interactive lane is that name plus ".interactive". Each job kind declares its
lane (`jobs.register(..., lane=...)`); a kind that declares none (`INHERIT`) runs in the lane of
the job that enqueued it, so a drain started by a live webhook is interactive and the same drain
started by reconciliation is background. The lane a job runs in also decides how much of the
shared Unitalk and Bitrix24 budgets it may use: background leaves a reserve for interactive.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

INTERACTIVE = "interactive"
BACKGROUND = "background"
INHERIT = ""
LANES = (INTERACTIVE, BACKGROUND)

_current: ContextVar[str] = ContextVar("lane", default=BACKGROUND)
_job: ContextVar[int | None] = ContextVar("job", default=None)


def current_lane() -> str:
    """The lane of the job running in this context (background outside any job)."""
    return _current.get()


def current_job() -> int | None:
    """The id of the job running in this context (its budget tickets are kept under it)."""
    return _job.get()


@contextmanager
def lane_scope(lane: str, *, job_id: int | None = None) -> Iterator[None]:
    token = _current.set(lane if lane in LANES else BACKGROUND)
    job_token = _job.set(job_id)
    try:
        yield
    finally:
        _job.reset(job_token)
        _current.reset(token)


def queue_name(lane: str, *, default_queue: str) -> str:
    """The broker queue of `lane` given the deployment's default queue name."""
    return f"{default_queue}.{INTERACTIVE}" if lane == INTERACTIVE else default_queue


def queue_for(lane: str) -> str:
    """The broker queue of `lane` in this process (read at send time: test stacks switch the
    default queue of the publishing process)."""
    from celery import current_app

    return queue_name(lane, default_queue=current_app.conf.task_default_queue)


def urgent_priority() -> int:
    """The message priority of an urgent kind (a click): ahead of the lane's default priority.

    Redis lists each priority separately and pops the lowest number first (kombu's
    priority_steps 0, 3, 6, 9), so a click's message is taken before live-call webhooks queued
    earlier in the same lane (docs/pipeline.md, "Lanes"); the others are sent at
    CELERY_TASK_DEFAULT_PRIORITY. The filesystem broker ignores priorities.
    """
    from django.conf import settings

    return int(settings.CELERY_URGENT_PRIORITY)


def resolve(declared: str, *, requested: str | None = None) -> str:
    """The lane of a new job: asked for > declared by its kind > the enqueuing job's lane."""
    if requested in LANES:
        return str(requested)
    if declared in LANES:
        return declared
    return current_lane()


class _PortalRow(Protocol):
    portal_id: Any


_Row = TypeVar("_Row", bound=_PortalRow)


def portal_round_robin(rows: list[_Row]) -> list[_Row]:
    """Due jobs interleaved portal by portal (each portal's own order kept), so one portal's
    backlog is sent one job per turn instead of ahead of everybody (docs/pipeline.md, "Lanes")."""
    by_portal: dict[Any, list[_Row]] = defaultdict(list)
    for row in rows:
        by_portal[row.portal_id].append(row)
    queues = list(by_portal.values())
    ordered: list[_Row] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[turn] for q in queues if turn < len(q))
    return ordered
