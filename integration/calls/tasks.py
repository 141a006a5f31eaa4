"""Beat entry points of the call pipeline: fan out one durable job per portal."""

from __future__ import annotations

from celery import shared_task

from integration.calls import reconcile


# The task keeps its first name: beat schedules on running deployments refer to it.
@shared_task(name="unitalk.reconcile_all", ignore_result=True)
def reconcile_all() -> None:
    reconcile.reconcile_enqueue_all()
