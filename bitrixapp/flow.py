"""The app shell's jobs: install, stored Bitrix24 events, the settings page's work
(docs/pipeline.md). Thin: load by id from the job, call one service.

| kind                    | runs                              | follows                          | when it dies |
|-------------------------|-----------------------------------|----------------------------------|--------------|
| portal.install          | services.portal_install_run       | events bound, placements, options| install marked failed, admins told |
| bitrix.event            | services.event_process            | calls/dial.py, for an event the door could not route | event marked failed |
| bitrix.users_refresh    | bitrix/users.users_refresh        | names and avatars cached         | —            |

The Unitalk settings' jobs (connection test, matching) are in integration/unitalk/flow.py.

Importing this module is the registration (BitrixAppConfig.ready).
"""

from __future__ import annotations

from typing import Any

from bitrixapp import services
from integration import jobs
from integration.bitrix import users as bitrix_users
from integration.core import lanes
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


# A click: ahead of the live calls' webhooks queued in the same lane (docs/pipeline.md, "Lanes").
@jobs.register(services.KIND_EVENT, on_dead=_event_dead, lane=lanes.INTERACTIVE, urgent=True)
def bitrix_event(job: Job) -> dict[str, Any]:
    return services.event_process(event_id=job.payload["event_id"])


@jobs.register(bitrix_users.KIND_USERS_REFRESH, lane=lanes.INTERACTIVE)
def users_refresh(job: Job) -> dict[str, Any]:
    return bitrix_users.users_refresh(portal=job.portal)  # type: ignore[arg-type]
