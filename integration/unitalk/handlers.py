"""Job handlers of the Unitalk side (registered at start-up by UnitalkConfig.ready).

Thin: load by id from the job, call one service.
"""

from __future__ import annotations

from typing import Any

from bitrixapp.models import Portal
from integration import jobs, lanes
from integration.errors import PermanentError
from integration.models import Job
from integration.unitalk import services


def _webhook_dead(job: Job, exc: BaseException) -> None:
    services.event_failed(event_id=job.payload["event_id"], error=str(exc))


# Interactive unless it came in a burst (intake.inbox_feed moves a backlog to background).
@jobs.register(services.KIND_WEBHOOK, on_dead=_webhook_dead, lane=lanes.INTERACTIVE)
def webhook_process(job: Job) -> dict[str, Any]:
    return services.event_process(event_id=job.payload["event_id"])


def _portal(job: Job) -> Portal:
    if job.portal is None:
        raise PermanentError(f"{job.kind} job without a portal", service="unitalk")
    return job.portal


@jobs.register(services.KIND_RECONCILE, lane=lanes.BACKGROUND)
def reconcile(job: Job) -> dict[str, Any]:
    return services.reconcile_portal(portal=_portal(job))


@jobs.register(services.KIND_OPERATORS_SYNC, lane=lanes.BACKGROUND)
def operators_sync(job: Job) -> dict[str, Any]:
    return services.operators_sync(portal=_portal(job))
