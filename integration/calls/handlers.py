"""Job kinds of the call pipeline (registered at start-up by CallsConfig.ready).

Thin: load the CallSync id from the payload, call one service. Jobs are keyed by
(kind, CallSync id), so a duplicate webhook or event never adds work.
"""

from __future__ import annotations

from typing import Any

from integration import jobs, lanes
from integration.calls import dial, failed, missed, recording, sync
from integration.calls.models import FailedCall
from integration.models import Job


def _crm_sync_dead(job: Job, exc: BaseException) -> None:
    """A Bitrix24 step died after its retries: a person can retry it from the failed-call list."""
    row = sync.sync_failed(sync_id=job.payload["sync_id"], error=str(exc))
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
)
def call_dial(job: Job) -> dict[str, Any]:
    return dial.call_dial(job=job)


# A live call's drain is interactive, a backlog's background: the lane of its enqueuer.
@jobs.register(sync.KIND_SYNC, on_dead=_crm_sync_dead, lane=lanes.INHERIT)
def call_sync(job: Job) -> dict[str, Any]:
    return sync.sync_run(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_REGISTER, lane=lanes.INTERACTIVE)
def call_register(job: Job) -> dict[str, Any]:
    # No dead hook: call.sync registers the call anyway once it ends.
    return sync.register_run(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_CARD, lane=lanes.INTERACTIVE)
def call_card(job: Job) -> dict[str, Any]:
    return sync.card_show(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_DETAILS, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_details(job: Job) -> dict[str, Any]:
    return sync.details_store(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_RECORDING, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_recording(job: Job) -> dict[str, Any]:
    return recording.recording_store(sync_id=job.payload["sync_id"])


@jobs.register(sync.KIND_MISSED, on_dead=_crm_sync_dead, lane=lanes.BACKGROUND)
def call_missed(job: Job) -> dict[str, Any]:
    return missed.missed_handle(sync_id=job.payload["sync_id"])
