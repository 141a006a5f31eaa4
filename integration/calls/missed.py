"""Missed inbound calls: someone must call back. Tell the owner, open a "callback needed" item.

Owner (PortalOptions.missed_owner_rule): the CRM entity's responsible (searchCrmEntities,
docs/bitrix24.md §5.5) → the last user who rang (operator mapping of the call's line) → the
default user → the installing user. A later answered outgoing call to the number resolves the
item (sync.py).
"""

from __future__ import annotations

import logging
from typing import Any

from bitrixapp.models import Portal, PortalOptions, portal_options
from integration.bitrix import telephony
from integration.calls import failed, takeover
from integration.calls.models import CallSync, FailedCall
from integration.core import alerts, inputs
from integration.core.log import log_context
from integration.unitalk import selectors as unitalk_selectors

logger = logging.getLogger(__name__)


def missed_owner(*, portal: Portal, row: CallSync) -> int | None:
    options = portal_options(portal)
    rule = options.missed_owner_rule
    if rule == PortalOptions.MissedOwnerRule.CRM_RESPONSIBLE and row.phone_number:
        entities = telephony.search_crm_entities(portal, phone_number=row.phone_number)
        # Prefer the entity the call was bound to, else Bitrix24's own order (contacts first).
        entities.sort(
            key=lambda e: (
                str(e.get("CRM_ENTITY_TYPE")) != row.crm_entity_type
                or str(e.get("CRM_ENTITY_ID")) != str(row.crm_entity_id)
            )
        )
        for entity in entities:
            owner = inputs.positive_id_or_none(entity.get("ASSIGNED_BY_ID"))
            if owner:
                return owner
    if rule != PortalOptions.MissedOwnerRule.DEFAULT_USER and row.call and row.call.operator_line:
        user = unitalk_selectors.operator_user_for_line(portal, row.call.operator_line)
        if user:
            return int(user)
    return options.default_user_id or portal.installed_by_user_id


def missed_handle(*, sync_id: int) -> dict[str, Any]:
    """Job `call.missed`: one item and one notification per missed call (repeats are no-ops)."""
    row = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    portal = row.portal
    with log_context(call=row.pk):
        handled = FailedCall.objects.filter(sync=row, kind=FailedCall.Kind.MISSED).first()
        if handled is not None:
            # A retry after a crash past the open: its callback is made sure of (idempotent).
            failed.callback_opened(item=handled)
            return {"skipped": "already handled"}
        # The owner may be away: fallback routing names the first available person.
        owner = takeover.missed_owner_pick(row=row, owner=missed_owner(portal=portal, row=row))
        number = "".join(ch for ch in row.phone_number if ch in "0123456789") or row.phone_number
        item = failed.failed_call_open(
            portal=portal,
            kind=FailedCall.Kind.MISSED,
            dedupe_key=f"missed:{number}",
            reason="missed call, callback needed",
            phone_number=number,
            owner_user_id=owner,
            call=row.call,
            sync=row,
            crm_entity_type=row.crm_entity_type,
            crm_entity_id=row.crm_entity_id,
        )
        alerts.notification_raise(
            portal=portal,
            kind="call.missed",
            message=f"Missed call from {row.phone_number}: please call back",
            tag=f"call.missed:{number}",
            severity="warning",
            user_id=owner,
            context={"sync_id": row.pk, "item_id": item.pk, "phone": number},
            params={"phone": row.phone_number},
            log_level=logging.INFO,  # ordinary business: the owner calls back
        )
        logger.info("missed call handed to its owner", extra={"owner": owner})
    return {"owner": owner, "item": item.pk}
