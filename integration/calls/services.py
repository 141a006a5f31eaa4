"""Services of the call pipeline.

Only the hook the Unitalk side calls lives here for now; the call-pipeline issue implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from integration.calls.models import Call


def call_changed(*, call: Call, event: str) -> None:
    """A call row was created or changed by Unitalk data: sync it onward.

    Contract: called after the change is saved (inside the worker's transaction, so enqueue with
    `jobs.job_enqueue`, which dispatches after commit), once per merged webhook event and once
    per call completed by reconciliation. `event` is the Unitalk event name (CALL_NEW,
    CALL_REDIRECT, CALL_ANSWER, CALL_END) or "RECONCILED". It may be called more than once for
    the same state (a webhook after reconciliation), so the implementation must be idempotent:
    key its jobs by call id and `call.status`. Must not raise for a call it does not handle.

    Placeholder: the call-pipeline issue implements the Bitrix24 sync here.
    """
    return None
