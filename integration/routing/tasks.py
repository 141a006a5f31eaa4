"""Beat entry point of fallback routing: escalate callbacks left open (docs/routing.md)."""

from __future__ import annotations

from celery import shared_task

from integration.routing import inbound


@shared_task(name="routing.escalate_due", ignore_result=True)
def escalate_due() -> None:
    inbound.escalations_enqueue()
