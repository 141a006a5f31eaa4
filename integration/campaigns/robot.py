"""The automation robot "Add to campaign" (docs/campaigns.md, "The robot"; docs/agents.md §2.2).

Registered on install (integration/bitrix/binding.py, bizproc.robot.add). When a pipeline's robot
runs on a CRM item, the portal POSTs the handler form-encoded (SRC CBPRestActivity::Execute):
`code`, `document_id[0..2]` (`crm`, the document class, `LEAD_5`), `properties[campaign]`,
`workflow_id`, `event_token`, `auth[...]` with the application_token. The door checks it, stores
one BitrixEvent row (deduped by the run's event token) and answers at once; the job
`campaign.robot` reads the item's phones and enrols them in the campaign, deduped by phone.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from bitrixapp.models import BitrixEvent, Portal
from integration import jobs
from integration.bitrix import binding
from integration.campaigns import services, sources
from integration.campaigns.models import Campaign
from integration.core import inputs

logger = logging.getLogger(__name__)

KIND_ROBOT = "campaign.robot"
EVENT = "ROBOT:ADD_TO_CAMPAIGN"
#: `document_id[2]` of a CRM document: LEAD_5, DEAL_7, CONTACT_3, COMPANY_9, DYNAMIC_128_4.
#: ASCII digits only: \d alone also matches "١٢٨" (integration/core/inputs.py).
DOCUMENT = re.compile(r"^(LEAD|DEAL|CONTACT|COMPANY|DYNAMIC_\d{1,9})_(\d{1,19})$", re.ASCII)


class RobotRefused(Exception):
    """The robot's request cannot be taken: `status` is the HTTP answer, `field` what is wrong."""

    def __init__(self, message: str, *, status: int = 400, field: str = "") -> None:
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


@dataclass(frozen=True)
class RobotRun:
    campaign: Campaign
    entity_type: str
    entity_type_id: int
    entity_id: int
    dedupe_key: str
    user_id: int | None


def robot_run_parse(*, portal: Portal, payload: dict[str, Any]) -> RobotRun:
    """Check a robot run of an authenticated portal. Raises RobotRefused (nothing stored)."""
    if str(payload.get("code") or "") != binding.ROBOT_CODE:
        raise RobotRefused("unknown robot code", field="code")
    document = payload.get("document_id")
    third = document.get("2") if isinstance(document, dict) else None
    found = DOCUMENT.match(third) if isinstance(third, str) else None
    if found is None:
        raise RobotRefused("document_id[2] must name a CRM item (LEAD_5)", field="document_id")
    entity_type = found.group(1)
    type_id = sources.type_id_for(entity_type)
    entity_id = inputs.parse_int(found.group(2), field="document_id", minimum=1)
    if type_id is None:
        raise RobotRefused("unknown CRM entity type", field="document_id")
    properties = payload.get("properties")
    raw = properties.get(binding.ROBOT_PROPERTY) if isinstance(properties, dict) else None
    try:
        campaign_id = inputs.parse_int(raw, field="properties[campaign]", minimum=1)
    except inputs.InputError as exc:
        raise RobotRefused(
            "properties[campaign] must be a campaign number", field="properties[campaign]"
        ) from exc
    # Another portal's campaign is as unknown as a missing one (one portal never sees another's).
    # The system campaign of callbacks takes no numbers from outside (docs/campaigns.md).
    campaign = (
        Campaign.objects.filter(portal=portal, pk=campaign_id)
        .exclude(source=Campaign.Source.CALLBACKS)
        .first()
    )
    if campaign is None:
        raise RobotRefused("no such campaign on this portal", status=404, field="properties")
    if campaign.state == Campaign.State.FINISHED:
        raise RobotRefused("the campaign is finished", status=409, field="properties")
    token = payload.get("event_token")
    workflow = payload.get("workflow_id")
    if not isinstance(token, str) or not token or not isinstance(workflow, str) or not workflow:
        raise RobotRefused("workflow_id and event_token are required", field="event_token")
    auth = payload.get("auth")
    user_raw = auth.get("user_id") if isinstance(auth, dict) else None
    user_id = inputs.parse_int_or_none(user_raw, field="auth[user_id]")
    # One row per robot run: a repeated POST of the same run is the same row.
    run_hash = hashlib.sha256(f"{workflow}|{token}".encode()).hexdigest()
    return RobotRun(
        campaign=campaign,
        entity_type=entity_type,
        entity_type_id=type_id,
        entity_id=entity_id,
        dedupe_key=f"robot:{portal.member_id}:{run_hash}",
        user_id=user_id,
    )


def robot_run_receive(*, portal: Portal, run: RobotRun) -> tuple[BitrixEvent, bool]:
    """Store the run once and enqueue its job. Returns (row, created)."""
    try:
        with transaction.atomic():
            row = BitrixEvent.objects.create(
                portal=portal,
                event=EVENT,
                dedupe_key=run.dedupe_key,
                data={
                    "campaign_id": run.campaign.pk,
                    "entity_type": run.entity_type,
                    "entity_type_id": run.entity_type_id,
                    "entity_id": run.entity_id,
                },
                user_id=run.user_id,
            )
            jobs.job_enqueue(
                kind=KIND_ROBOT,
                key=f"{KIND_ROBOT}:{row.pk}",
                portal=portal,
                subject=f"robot {run.entity_type}_{run.entity_id} → campaign {run.campaign.pk}",
                payload={"event_id": row.pk},
            )
    except IntegrityError:
        return BitrixEvent.objects.get(dedupe_key=run.dedupe_key), False
    return row, True


def robot_run_process(*, event_id: int) -> dict[str, Any]:
    """Job `campaign.robot`: the item's phones (a deal's from its contact or company) into the
    campaign, deduped by phone; an item deleted since is recorded, not retried."""
    row = BitrixEvent.objects.select_related("portal").get(pk=event_id)
    if row.state == BitrixEvent.State.PROCESSED:
        return {"skipped": "already processed"}
    data = row.data
    campaign = Campaign.objects.select_related("portal").get(
        pk=data["campaign_id"], portal=row.portal
    )
    entries = sources.entity_entries(
        row.portal, entity_type_id=int(data["entity_type_id"]), entity_id=int(data["entity_id"])
    )
    counts = services.items_add(campaign=campaign, entries=entries) if entries else {}
    note = "" if entries else "the CRM item was not found in Bitrix24"
    BitrixEvent.objects.filter(pk=row.pk).update(
        state=BitrixEvent.State.PROCESSED, processed_at=timezone.now(), error=note
    )
    logger.info("robot run enrolled", extra={"campaign": campaign.pk, **counts})
    return {"campaign": campaign.pk, **counts} | ({"note": note} if note else {})


def robot_run_failed(*, event_id: int, error: str) -> None:
    BitrixEvent.objects.filter(pk=event_id).update(
        state=BitrixEvent.State.FAILED, error=error[:2000]
    )
