"""Beat entry points of the Unitalk side: fan out one durable job per portal."""

from __future__ import annotations

from celery import shared_task

from integration.unitalk import services


@shared_task(name="unitalk.operators_sync_all", ignore_result=True)
def operators_sync_all() -> None:
    services.operators_sync_enqueue_all()
