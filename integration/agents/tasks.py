"""Beat entry point of agent status: fan out one poll job per portal that is due."""

from __future__ import annotations

from celery import shared_task

from integration.agents import poll


@shared_task(name="agents.poll_all", ignore_result=True)
def poll_all() -> None:
    poll.agents_poll_enqueue_all()
