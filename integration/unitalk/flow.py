"""Unitalk's own jobs (the call pipeline's are in calls/flow.py), docs/pipeline.md.

| kind                   | runs                        | on success               | when it dies          |
|------------------------|-----------------------------|--------------------------|-----------------------|
| unitalk.operators_sync | services.operators_sync     | lines mapped to users; unmapped lines raise a problem | retried next period |
| unitalk.connection_test| services.connection_test_run| connection status shown on the settings page | — |

Importing this module is the registration (UnitalkConfig.ready).
"""

from __future__ import annotations

from typing import Any

from integration import jobs
from integration.core import lanes
from integration.core.errors import PermanentError
from integration.models import Job
from integration.unitalk import services


@jobs.register(services.KIND_OPERATORS_SYNC, lane=lanes.BACKGROUND)
def operators_sync(job: Job) -> dict[str, Any]:
    if job.portal is None:
        raise PermanentError(f"{job.kind} job without a portal", service="unitalk")
    return services.operators_sync(portal=job.portal)


@jobs.register(services.KIND_CONNECTION_TEST, lane=lanes.INTERACTIVE)
def connection_test(job: Job) -> dict[str, Any]:
    if job.portal is None:
        raise PermanentError(f"{job.kind} job without a portal", service="unitalk")
    return services.connection_test_run(portal=job.portal)
