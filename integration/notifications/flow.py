"""The notifications flow: job kind → service, and what follows any job (docs/pipeline.md).

| kind                  | runs                                  | on success | when it dies         |
|-----------------------|---------------------------------------|------------|----------------------|
| notification.deliver  | delivery.notification_deliver         | —          | row stays undelivered|
| notification.email    | delivery.notification_email           | —          | row stays un-e-mailed|
| notification.digest   | delivery.digest_send                  | —          | next day's digest    |
| (any job)             | delivery.dead_job_problem on settling | problem closes when no dead job is left | one "jobs.dead" problem for the admins |

Importing this module is the registration (IntegrationConfig.ready).
"""

from __future__ import annotations

from typing import Any

from integration import jobs
from integration.core import lanes
from integration.core.alerts import KIND_DELIVER, KIND_DIGEST, KIND_EMAIL
from integration.models import Job
from integration.notifications import delivery


# A notice follows what raised it: a failed click is told at once, a digest in the background.
@jobs.register(KIND_DELIVER, lane=lanes.INHERIT)
def notification_deliver(job: Job) -> dict[str, Any]:
    return delivery.notification_deliver(notification_id=int(job.payload["notification_id"]))


@jobs.register(KIND_EMAIL, lane=lanes.BACKGROUND)
def notification_email(job: Job) -> dict[str, Any]:
    return delivery.notification_email(notification_id=int(job.payload["notification_id"]))


@jobs.register(KIND_DIGEST, lane=lanes.BACKGROUND)
def notification_digest(job: Job) -> dict[str, Any]:
    return delivery.digest_send(portal_id=int(job.payload["portal_id"]))


jobs.on_settled(delivery.dead_job_problem)
