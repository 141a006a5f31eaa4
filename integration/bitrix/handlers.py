"""Job handlers of the Bitrix24 side (registered at start-up by BitrixAppConfig.ready).

Thin: load by id from the job, call one service.
"""

from __future__ import annotations

from typing import Any

from bitrixapp import services
from integration import jobs, lanes
from integration.models import Job


def _install_dead(job: Job, exc: BaseException) -> None:
    if job.portal is not None:
        services.portal_install_failed(portal=job.portal, error=str(exc))


@jobs.register(services.KIND_INSTALL, on_dead=_install_dead, lane=lanes.INTERACTIVE)
def portal_install(job: Job) -> dict[str, Any]:
    assert job.portal is not None
    return services.portal_install_run(portal=job.portal)


def _event_dead(job: Job, exc: BaseException) -> None:
    services.event_failed(event_id=job.payload["event_id"], error=str(exc))


@jobs.register(services.KIND_EVENT, on_dead=_event_dead, lane=lanes.INTERACTIVE)
def bitrix_event(job: Job) -> dict[str, Any]:
    return services.event_process(event_id=job.payload["event_id"])
