"""Loading a campaign's numbers from Bitrix24 (docs/agents.md §2.1, §2.2).

A CRM filter pages `crm.item.list` (50 per page, always; phones only with select ['*']); the
first page tells the total, the other pages go in `batch` requests of 50 pages each, all through
the portal's rate limiter (integration/bitrix/client.py). A deal has no phones: its contact's
(or company's) phones are fetched the same way. A Bitrix24 call list gives entity ids only
(`crm.calllist.items.get`), resolved to phones with crm.item.list by id.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from integration.bitrix import batch, client
from integration.campaigns import services
from integration.campaigns.models import Campaign
from integration.campaigns.services import Entry
from integration.core import inputs
from integration.core.errors import PermanentError

logger = logging.getLogger(__name__)

PAGE = 50  # crm.item.list always answers 50 per page (docs/agents.md §2.2)
TYPE_NAMES = {1: "LEAD", 2: "DEAL", 3: "CONTACT", 4: "COMPANY"}
PHONE_TYPES = {1, 3, 4}  # leads, contacts, companies carry `fm`; deals and smart processes not
CALL_LIST_TYPES = {"CONTACT": 3, "COMPANY": 4}


class SourceInvalid(PermanentError):
    """The source cannot be read as configured (bad filter, unknown list): shown on the page."""


def type_id_for(name: str) -> int | None:
    """The entityTypeId of LEAD/DEAL/CONTACT/COMPANY/DYNAMIC_n, None if unknown."""
    for type_id, known in TYPE_NAMES.items():
        if known == name:
            return type_id
    if name.startswith("DYNAMIC_"):
        # The one integer parser (docs/security.md "Numbers and JSON from outside").
        return inputs.positive_id_or_none(name[8:])
    return None


def _type_name(type_id: int) -> str:
    return TYPE_NAMES.get(type_id, f"DYNAMIC_{type_id}")


def _rows(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        items = result.get("items")
        return [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []


def items_list(
    portal: Any, *, entity_type_id: int, filter_: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every CRM item matching `filter_`, with phones. Paged, never one request for everything."""
    params = {
        "entityTypeId": entity_type_id,
        "filter": filter_,
        "select": ["*"],
        "order": {"id": "ASC"},
    }
    first = client.call_envelope(portal, "crm.item.list", {**params, "start": 0})
    rows = _rows(first.result)
    total = min(first.total or len(rows), settings.CAMPAIGN_MAX_ITEMS)
    commands = [("crm.item.list", {**params, "start": start}) for start in range(PAGE, total, PAGE)]
    if commands:
        answer = batch.batch(portal, commands)
        if answer.errors:
            key, error = next(iter(answer.errors.items()))
            raise SourceInvalid(f"crm.item.list page {key}: {error}", service="bitrix")
        for key in sorted(answer.results, key=int):
            rows.extend(_rows(answer.results[key]))
    return rows[: settings.CAMPAIGN_MAX_ITEMS]


def _phones(row: dict[str, Any]) -> list[str]:
    return [
        str(p.get("value") or "")
        for p in row.get("fm") or []
        if isinstance(p, dict) and str(p.get("typeId") or "PHONE").upper() == "PHONE"
    ]


def _by_ids(portal: Any, type_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), PAGE * 10):
        chunk = ids[start : start + PAGE * 10]
        commands = [
            ("crm.item.list", {"entityTypeId": type_id, "filter": {"@id": chunk[i : i + PAGE]},
                               "select": ["*"]})
            for i in range(0, len(chunk), PAGE)
        ]  # fmt: skip
        answer = batch.batch(portal, commands)
        for result in answer.results.values():
            for row in _rows(result):
                found[int(row["id"])] = row
    return found


def _entries(portal: Any, type_id: int, rows: list[dict[str, Any]], **extra: Any) -> list[Entry]:
    """One entry per phone; a row without phones becomes one entry with an empty number (skipped
    with the reason); a deal or smart-process item takes its contact's or company's phones."""
    owners: dict[int, dict[int, dict[str, Any]]] = {}
    if type_id not in PHONE_TYPES:
        contact_ids = sorted({int(r["contactId"]) for r in rows if r.get("contactId")})
        company_ids = sorted({int(r["companyId"]) for r in rows if r.get("companyId")})
        owners = {3: _by_ids(portal, 3, contact_ids), 4: _by_ids(portal, 4, company_ids)}
    entries: list[Entry] = []
    for row in rows:
        owner_type, owner_id, owner = type_id, int(row["id"]), row
        if type_id not in PHONE_TYPES:
            if row.get("contactId"):
                owner_type, owner_id = 3, int(row["contactId"])
            elif row.get("companyId"):
                owner_type, owner_id = 4, int(row["companyId"])
            owner = owners.get(owner_type, {}).get(owner_id, {})
        phones = _phones(owner) or [""]
        for phone in phones:
            entries.append(
                Entry(
                    raw_phone=phone,
                    entity_type=_type_name(type_id),
                    entity_type_id=type_id,
                    entity_id=int(row["id"]),
                    phone_owner_type_id=owner_type,
                    phone_owner_id=owner_id,
                    responsible_user_id=int(row["assignedById"])
                    if row.get("assignedById")
                    else None,
                    **extra,
                )
            )
    return entries


def entity_entries(portal: Any, *, entity_type_id: int, entity_id: int) -> list[Entry]:
    """The numbers of one CRM item (a deal's from its contact or company); [] if it is gone."""
    rows = list(_by_ids(portal, entity_type_id, [entity_id]).values())
    return _entries(portal, entity_type_id, rows) if rows else []


def campaign_load(*, campaign: Campaign) -> dict[str, int]:
    """Job `campaign.load`: read the source and enrol its numbers. Raises SourceInvalid."""
    portal = campaign.portal
    params = campaign.source_params or {}
    if campaign.source == Campaign.Source.CRM_FILTER:
        type_id = int(params.get("entity_type_id") or 0)
        if type_id < 1:
            raise SourceInvalid("the CRM filter names no entity type", service="bitrix")
        rows = items_list(portal, entity_type_id=type_id, filter_=params.get("filter") or {})
        entries = _entries(portal, type_id, rows)
    elif campaign.source == Campaign.Source.CALL_LIST:
        list_id = int(params.get("list_id") or 0)
        members = client.call(portal, "crm.calllist.items.get", {"LIST_ID": list_id})
        entries = []
        for kind, type_id in CALL_LIST_TYPES.items():
            ids = [int(m["ID"]) for m in members or [] if str(m.get("ENTITY_TYPE")).upper() == kind]
            rows = list(_by_ids(portal, type_id, ids).values()) if ids else []
            entries += _entries(portal, type_id, rows, call_list_id=list_id)
    else:
        return {"added": 0, "duplicate": 0, "invalid": 0}
    counts = services.items_add(campaign=campaign, entries=entries)
    logger.info("campaign loaded", extra={"campaign": campaign.pk, **counts})
    return counts
