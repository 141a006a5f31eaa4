"""Fallback routing as one table: job kind → the service it runs, what follows, what happens
when it dies (docs/routing.md). Handlers are thin: ids in, one service.

| kind              | runs                      | on success / follows                         | when it dies                    |
|-------------------|---------------------------|----------------------------------------------|---------------------------------|
| routing.reroute   | services.reroute_decide   | path stored; caller told; next person asked (notice + to-do) or routing.dial; or the callback task; call.sync finishes the original with the path as FAILED_REASON | services.reroute_failed: callback task, caller told, call finished |
| routing.dial      | services.reroute_dial     | new call registered for the next person; call.dial from their line | services.reroute_dial_failed: callback task, caller told |
| routing.todo      | services.reroute_todo     | crm.activity.todo.add on the record          | — (the notice and the list have it) |
| (click failed)    | services.reroute_enqueue  | calls/takeover.py: the click is held for routing.reroute | —                   |
| (before a dial)   | services.line_refusal     | calls/takeover.py: a failing line is not dialled | —                           |
| routing.escalate  | inbound.callback_escalate | the owner's manager told the callback is still open (beat's routing.escalate_due sweep enqueues it) | — |
| (call.dial dead: Unitalk down) | _settled     | the "Unitalk unavailable" banner on every app page | —                   |
| (call.dial ok)    | _settled                  | the "Unitalk unavailable" banner is resolved | —                               |
| (inbound ringing) | inbound.inbound_pick      | calls/takeover.py: the card goes to the first available person | —          |
| (card shown)      | inbound.card_viewers      | calls/takeover.py: the colleagues present see a handed-on card too | — |
| (missed owner)    | inbound.missed_pick       | calls/takeover.py: the callback goes to the first available person | —      |
| (callback opened) | callbacks.callback_dialer_add | calls/failed.py: the owner dials a running campaign → a top-priority dialer item for them | — |
| (callback resolved) | callbacks.callback_dialer_close | calls/failed.py: its dialer item not dialled yet is skipped | — |

Importing this module is the registration (RoutingConfig.ready).
"""

from __future__ import annotations

from typing import Any

from integration import jobs
from integration.calls import dial, failed, takeover
from integration.core import alerts, lanes
from integration.models import Job
from integration.routing import callbacks, inbound, services


@jobs.register(
    services.KIND_REROUTE,
    on_dead=lambda job, exc: services.reroute_failed(
        sync_id=int(job.payload["sync_id"]), error=str(exc)
    ),
    lane=lanes.INTERACTIVE,
)
def reroute(job: Job) -> dict[str, Any]:
    return services.reroute_decide(
        sync_id=int(job.payload["sync_id"]),
        trigger=str(job.payload.get("trigger") or ""),
        code=str(job.payload.get("code") or ""),
    )


@jobs.register(
    services.KIND_DIAL,
    on_dead=lambda job, exc: services.reroute_dial_failed(
        reroute_id=int(job.payload["reroute_id"]), error=str(exc)
    ),
    lane=lanes.INTERACTIVE,
)
def reroute_dial(job: Job) -> dict[str, Any]:
    return services.reroute_dial(reroute_id=int(job.payload["reroute_id"]))


@jobs.register(services.KIND_TODO, lane=lanes.BACKGROUND)
def reroute_todo(job: Job) -> dict[str, Any]:
    user = job.payload.get("user_id")
    return services.reroute_todo(
        reroute_id=int(job.payload["reroute_id"]), user_id=int(user) if user else None
    )


@jobs.register(inbound.KIND_ESCALATE, lane=lanes.BACKGROUND)
def callback_escalate(job: Job) -> dict[str, Any]:
    return inbound.callback_escalate(item_id=int(job.payload["item_id"]))


def _settled(job: Job, state: str) -> None:
    """A click died because Unitalk fails: the banner; a dial went through again: it goes."""
    if job.portal_id is None:
        return
    if job.kind == dial.KIND_DIAL and state == Job.State.DEAD:
        services.unitalk_down_banner(job=job)
        return
    if job.kind == dial.KIND_DIAL and state == Job.State.SUCCEEDED:
        alerts.notification_resolve(portal=job.portal, tag=services.TAG_UNITALK_DOWN)


takeover.on_click_failed(services.reroute_enqueue)
takeover.on_line_check(services.line_refusal)
takeover.on_inbound_user(inbound.inbound_pick)
takeover.on_card_viewers(inbound.card_viewers)
takeover.on_missed_owner(inbound.missed_pick)
failed.on_callback_opened(callbacks.callback_dialer_add)
failed.on_callbacks_resolved(callbacks.callback_dialer_close)
jobs.on_settled(_settled)
