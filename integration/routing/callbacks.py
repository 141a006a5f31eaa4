"""A missed call's callback in the autodialer (docs/routing.md "Callbacks in the dialer").

The missed-call list stays the callback's home (its owner, resolved by any answered call to the
number, escalated by the sweep). When the owner dials a running campaign, the callback is also
offered to them by the dialer before any campaign number (campaigns/callbacks.py); for anyone
else nothing changes, so nobody is rung by surprise (docs/routing.md "ask first").
"""

from __future__ import annotations

import logging

from integration.agents.models import AgentState, State
from integration.calls.models import FailedCall
from integration.campaigns import callbacks as dialer
from integration.campaigns.models import CampaignItem
from integration.routing import facts
from integration.unitalk import selectors as unitalk_selectors

logger = logging.getLogger(__name__)


def _refusal(item: FailedCall, owner: int) -> str:
    """Why the owner cannot be offered this callback by the dialer ("" = they can)."""
    agent = AgentState.objects.filter(portal_id=item.portal_id, bitrix_user_id=owner).first()
    if agent is not None and (agent.user_missing or agent.state == State.INACTIVE):
        return f"user {owner} was deleted in Bitrix24"
    if not unitalk_selectors.operator_line_for_user(item.portal, owner):
        return f"user {owner} has no Unitalk line"
    if not item.phone_number:
        return "no number to call back"
    return ""


def callback_dialer_add(*, item: FailedCall) -> CampaignItem | None:
    """calls/failed.py, a "call back" item opened: its dialer item when the owner dials a
    running campaign (top priority, for them only), once per item. A deleted owner or one
    without a line: a skipped dialer item with the reason (the list keeps the callback).
    None when the portal turned it off or the owner dials no campaign."""
    if item.state == FailedCall.State.RESOLVED or not item.owner_user_id:
        return None
    policy = facts.policy_get(portal=item.portal)
    if not policy.enabled or not policy.callbacks_in_dialer:
        return None
    owner = item.owner_user_id
    if not dialer.dialling_campaigns(portal=item.portal, user_id=owner):
        return None
    row, created = dialer.callback_item_add(
        item=item, phone=item.phone_number, refused=_refusal(item, owner)
    )
    if created:
        logger.info(
            "callback in the dialer",
            extra={"item": item.pk, "dialer_item": row.pk, "state": row.state},
        )
    return row


def callback_dialer_close(*, item_ids: list[int], resolution: str) -> None:
    """calls/failed.py, "call back" items resolved: their callbacks are not dialled."""
    dialer.callback_items_close(failed_call_ids=item_ids, resolution=resolution)
