"""The call pipeline as one table: job kind → the service it runs, what follows, what happens
when it dies (docs/pipeline.md). Jobs are keyed by (kind, id), so a duplicate webhook or event
never adds work; handlers are thin: ids in, one service.

| kind             | runs                        | on success / follows                 | when it dies                      |
|------------------|-----------------------------|--------------------------------------|-----------------------------------|
| call.dial        | dial.call_dial              | Unitalk rings; webhooks follow       | dial.dial_failed: call finished as failed, user told |
| unitalk.webhook  | merge.event_process         | call_changed → call.register / card / sync | event marked failed         |
| unitalk.reconcile| reconcile.reconcile_portal  | lost calls merged as RECONCILED      | retried next period               |
| call.register    | sync.register_run           | —                                    | — (call.sync registers anyway)    |
| call.card        | followups.card_show         | —                                    | —                                 |
| call.sync        | drain.sync_run              | call.details, call.recording, call.missed | failed-call item (crm sync), recording kept on Drive |
| call.details     | followups.details_store     | —                                    | failed-call item                  |
| call.recording   | recording.recording_store   | —                                    | failed-call item                  |
| call.missed      | missed.missed_handle        | missed-call item + notice            | failed-call item                  |
| (any job)        | failed.failed_call_follow_job on settling | retried items resolve  | retried items reopen              |

Importing this module is the registration (CallsConfig.ready).
"""

from __future__ import annotations

from typing import Any

from integration import jobs
from integration.calls import (
    dial,
    drain,
    failed,
    followups,
    merge,
    missed,
    reconcile,
    recording,
    sync,
)
from integration.calls.models import FailedCall
from integration.core import lanes
from integration.core.errors import PermanentError
from integration.models import Job


def _crm_sync_dead(job: Job, exc: BaseException) -> None:
    """A Bitrix24 step died after its retries: a person can retry it from the failed-call list."""
    row = followups.sync_failed(sync_id=job.payload["sync_id"], error=str(exc))
    failed.failed_call_report(
        row=row,
        kind=FailedCall.Kind.CRM_SYNC_FAILED,
        dedupe_key=f"job:{job.pk}",
        reason=f"{job.kind}: {exc}",
        job=job,
        notice_kind="call.crm_sync_failed",
        message=f"The call with {row.phone_number} could not be saved in Bitrix24: {exc}",
        context={"job_id": job.pk, "step": job.kind},
    )
    if job.kind == sync.KIND_SYNC and row.call is not None and row.call.recording_url:
        # No Bitrix24 call to carry the recording: keep it on the app's Drive meanwhile.
        sync.job_enqueue(sync.KIND_RECORDING, row)


@jobs.register(
    dial.KIND_DIAL,
    on_dead=lambda job, exc: dial.dial_failed(job=job, error=exc),
    lane=lanes.INTERACTIVE,
    urgent=True,
)
def call_dial(job: Job) -> dict[str, Any]:
    return dial.call_dial(job=job)


def _webhook_dead(job: Job, exc: BaseException) -> None:
    merge.event_failed(event_id=job.payload["event_id"], error=str(exc))


# Interactive unless it came in a burst (intake.inbox_feed moves a backlog to background).
@jobs.register(merge.KIND_WEBHOOK, on_dead=_webhook_dead, lane=lanes.INTERACTIVE)
def webhook_process(job: Job) -> dict[str, Any]:
    return merge.event_process(event_id=job.payload["event_id"])


@jobs.register(reconcile.KIND_RECONCILE, lane=lanes.BACKGROUND)
def call_reconcile(job: Job) -> dict[str, Any]:
    if job.portal is None:
        raise PermanentError(f"{job.kind} job without a portal", service="unitalk")
    return reconcile.reconcile_portal(portal=job.portal)


# A live call's drain is interactive, a backlog's background: the lane of its enqueuer.
@jobs.register(sync.KIND_SYNC, on_dead=_crm_sync_dead, lane=lanes.INHERIT)
def call_sync(job: Job) -> dict[str, Any]:
    return drain.sync_run(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_REGISTER, lane=lanes.INTERACTIVE)
def call_register(job: Job) -> dict[str, Any]:
    # No dead hook: call.sync registers the call anyway once it ends.
    return sync.register_run(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_CARD, lane=lanes.INTERACTIVE)
def call_card(job: Job) -> dict[str, Any]:
    return followups.card_show(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_DETAILS, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_details(job: Job) -> dict[str, Any]:
    return followups.details_store(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_RECORDING, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_recording(job: Job) -> dict[str, Any]:
    return recording.recording_store(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_MISSED, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_missed(job: Job) -> dict[str, Any]:
    return missed.missed_handle(sync_id=job.payload["sync_id"])


jobs.on_settled(failed.failed_call_follow_job)
