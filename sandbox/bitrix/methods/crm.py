"""The `crm` scope: leads, contacts, duplicates by phone, timeline comments, activities.

docs/bitrix24.md §7.3; `crm_create` and `crm_find_by_phone` also serve telephony's register.
"""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.methods.common import digits, matches, need_dict
from sandbox.bitrix.rest import BxError, Call, iso_now, method, paged


def _crm_store(call: Call, kind: str) -> dict[str, Any]:
    return call.portal["leads" if kind == "LEAD" else "contacts"]


def crm_create(call: Call, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    entity_id = call.next_id(kind.lower())
    phones = fields.get("PHONE") or []
    if isinstance(phones, dict):
        phones = list(phones.values())
    entity: dict[str, Any] = {
        k: v for k, v in fields.items() if isinstance(v, str | int | float | bool)
    }
    entity.update(
        {
            "ID": str(entity_id),
            "TITLE": str(fields.get("TITLE") or ""),
            "NAME": str(fields.get("NAME") or ""),
            "LAST_NAME": str(fields.get("LAST_NAME") or ""),
            "ASSIGNED_BY_ID": str(fields.get("ASSIGNED_BY_ID") or call.user["ID"]),
            "SOURCE_ID": str(fields.get("SOURCE_ID") or "CALL"),
            "DATE_CREATE": iso_now(),
            "PHONE": [
                {
                    "ID": str(index + 1),
                    "VALUE_TYPE": str(p.get("VALUE_TYPE") or "WORK"),
                    "VALUE": str(p.get("VALUE") or ""),
                    "TYPE_ID": "PHONE",
                }
                for index, p in enumerate(phones)
                if isinstance(p, dict)
            ],
        }
    )
    if kind == "LEAD":
        entity.setdefault("STATUS_ID", "NEW")
    entity["HAS_PHONE"] = "Y" if entity["PHONE"] else "N"
    _crm_store(call, kind)[str(entity_id)] = entity
    return entity


def crm_find_by_phone(call: Call, phone: str) -> list[tuple[str, dict[str, Any]]]:
    wanted = digits(phone)
    found: list[tuple[str, dict[str, Any]]] = []
    if not wanted:
        return found
    for kind in ("CONTACT", "LEAD"):
        for entity in _crm_store(call, kind).values():
            if any(digits(p["VALUE"]) == wanted for p in entity["PHONE"]):
                found.append((kind, entity))
    return found


def _crm_methods(kind: str) -> None:
    prefix = f"crm.{kind.lower()}"

    @method(f"{prefix}.add")
    def add(call: Call) -> Any:
        fields = need_dict(call, "fields")
        return int(crm_create(call, kind, fields)["ID"])

    @method(f"{prefix}.get")
    def get(call: Call) -> Any:
        # Both answers carry an empty code with HTTP 400, as real portals send them
        # (fast_bitrix24's recorded crm_get_batch_mix_success_and_errors; crm.*.get DOC).
        entity_id = str(call.get("id") or "").strip()
        if not entity_id.isdigit() or int(entity_id) <= 0:
            raise BxError("", "ID is not defined or invalid.")
        entity = _crm_store(call, kind).get(str(int(entity_id)))
        if entity is None:
            raise BxError("", "Not found")
        return entity

    @method(f"{prefix}.list")
    def list_(call: Call) -> Any:
        flt = call.get("filter") or {}
        if not isinstance(flt, dict):
            flt = {}
        items = [e for e in _crm_store(call, kind).values() if matches(e, flt)]
        items.sort(key=lambda e: int(e["ID"]))
        order = call.get("order") or {}
        if isinstance(order, dict) and str(order.get("ID", "")).upper() == "DESC":
            items.reverse()
        return paged(items, call)


_crm_methods("LEAD")
_crm_methods("CONTACT")


@method("crm.duplicate.findbycomm")
def duplicate_findbycomm(call: Call) -> Any:
    kind = str(call.get("type") or "").upper()
    if kind not in ("PHONE", "EMAIL"):
        raise BxError("Communication type is not defined", "Communication type is not defined")
    values = call.get("values")
    if not isinstance(values, list) or not values:
        raise BxError("Values are not defined", "Values are not defined")
    if len(values) > 20:
        raise BxError("Too many values", "Too many values")
    only = str(call.get("entity_type") or "").upper()
    result: dict[str, list[int]] = {}
    for value in values:
        if kind != "PHONE":
            continue
        for entity_kind, entity in crm_find_by_phone(call, value):
            if only and entity_kind != only:
                continue
            ids = result.setdefault(entity_kind, [])
            if int(entity["ID"]) not in ids:
                ids.append(int(entity["ID"]))
    return result


@method("crm.timeline.comment.add")
def timeline_comment_add(call: Call) -> Any:
    fields = call.params.get("fields")
    if not isinstance(fields, dict):
        raise BxError("ERROR_ARGUMENT", "Argument 'fields' is null or empty", argument="fields")
    kind = str(fields.get("ENTITY_TYPE") or "").upper()
    entity_id = str(fields.get("ENTITY_ID") or "")
    comment = str(fields.get("COMMENT") or "")
    if not kind or not entity_id or not comment:
        raise BxError("INVALID_ARG_VALUE", "ENTITY_ID, ENTITY_TYPE and COMMENT are required")
    if kind not in ("LEAD", "CONTACT") or entity_id not in _crm_store(call, kind):
        raise BxError("OWNER_NOT_FOUND", "Owner not found")
    comment_id = call.next_id("comment")
    call.portal["comments"].append(
        {"ID": comment_id, "ENTITY_TYPE": kind, "ENTITY_ID": entity_id, "COMMENT": comment}
    )
    return comment_id


@method("crm.activity.list")
def activity_list(call: Call) -> Any:
    flt = call.get("filter") or {}
    if not isinstance(flt, dict):
        flt = {}
    items = [a for a in call.portal["activities"].values() if matches(a, flt)]
    items.sort(key=lambda a: int(a["ID"]))
    return paged(items, call)
