"""The universal CRM methods `crm.item.list/get/add/update/delete` for leads (1), deals (2),
contacts (3), companies (4) and the sandbox's one smart process (1032).

docs/agents.md §2.2; DOC `api-reference/crm/universal/crm-item-{list,get,add,update,delete}.md`;
SRC `crm/lib/controller/item.php`. The records are the ones `crm.lead.*`, `crm.contact.*`,
`crm.deal.*`, `crm.company.*` and telephony's register read (crm.py), kept in upper-case names;
this module shows them in the camelCase of `crm.item.*`:

- phones are the `fm` multi-field, **only with `select: ['*']`** (`fm` cannot be named in
  `select`); an omitted `select` is `['*']`, the controller's default (SRC `listAction`);
- deals and smart-process items have no phones of their own: `contactId` / `contactIds`;
- 50 per page, `start` / `next` / `total`, `result: {"items": [...]}`;
- D7-controller errors: a missing or non-integer parameter is `{"error": 100, ...}` (DOC
  `crm-item-update` troubleshooting; `error` is an integer there).
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.bitrix.methods import crmfilter
from sandbox.bitrix.methods.crm import (
    PHONE_KINDS,
    ControllerError,
    controller_int,
    crm_bind_contacts,
    crm_create,
    crm_store,
)
from sandbox.bitrix.rest import BxError, Call, iso_now, method, paged

#: entityTypeId -> entity kind. 1032 is the sandbox's smart process (a dynamic type id).
ENTITY_TYPES = {1: "LEAD", 2: "DEAL", 3: "CONTACT", 4: "COMPANY", 1032: "DYNAMIC_1032"}
SMART_PROCESS_TITLES = {1032: "Sandbox smart process"}

_COMMON = ["ID", "ASSIGNED_BY_ID", "CREATED_BY_ID", "DATE_CREATE", "DATE_MODIFY", "OPENED"]
#: The stored fields `crm.item.*` shows per kind (a subset of object-fields.md).
FIELDS = {
    "LEAD": [*_COMMON, "TITLE", "NAME", "LAST_NAME", "STATUS_ID", "SOURCE_ID", "OPPORTUNITY",
             "CURRENCY_ID", "HAS_PHONE", "CONTACT_ID", "COMPANY_ID", "COMMENTS"],
    "DEAL": [*_COMMON, "TITLE", "STAGE_ID", "CATEGORY_ID", "SOURCE_ID", "OPPORTUNITY",
             "CURRENCY_ID", "CONTACT_ID", "CONTACT_IDS", "COMPANY_ID", "LEAD_ID", "COMMENTS"],
    "CONTACT": [*_COMMON, "NAME", "LAST_NAME", "SECOND_NAME", "POST", "TYPE_ID", "SOURCE_ID",
                "HAS_PHONE", "COMPANY_ID", "COMMENTS"],
    "COMPANY": [*_COMMON, "TITLE", "COMPANY_TYPE", "INDUSTRY", "HAS_PHONE", "COMMENTS"],
    "DYNAMIC_1032": [*_COMMON, "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
                     "CONTACT_ID", "COMPANY_ID"],
}  # fmt: skip
#: Names that are not the plain camelCase of the stored name (object-fields.md).
RENAMED = {"DATE_CREATE": "createdTime", "DATE_MODIFY": "updatedTime", "CREATED_BY_ID": "createdBy"}
INTEGERS = {"ID", "ASSIGNED_BY_ID", "CREATED_BY_ID", "CONTACT_ID", "COMPANY_ID", "CATEGORY_ID",
            "LEAD_ID"}  # fmt: skip
FLOATS = {"OPPORTUNITY"}


def camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _names(kind: str) -> dict[str, str]:
    """camelCase (and the stored upper-case name itself) -> stored name, for `kind`."""
    names: dict[str, str] = {}
    for field in FIELDS[kind]:
        shown = "stageId" if (kind == "LEAD" and field == "STATUS_ID") else RENAMED.get(field)
        names[shown or camel(field)] = field
        names[field] = field
    if kind == "LEAD":
        names["STAGE_ID"] = "STATUS_ID"
    return names


NAMES = {kind: _names(kind) for kind in FIELDS}
SHOWN = {kind: {stored: shown for shown, stored in NAMES[kind].items() if not shown.isupper()}
         for kind in FIELDS}  # fmt: skip


def entity_kind(call: Call) -> tuple[int, str]:
    type_id = controller_int(call, "entityTypeId")
    kind = ENTITY_TYPES.get(type_id)
    if kind is None:
        # CRM_TYPE_TYPE_NOT_FOUND; DOC lists it as "Smart process not found" (text UNCONFIRMED).
        raise BxError("NOT_FOUND", "Smart process not found")
    return type_id, kind


def view(
    record: dict[str, Any], kind: str, type_id: int, select: list[str] | None
) -> dict[str, Any]:
    """The camelCase item; `select` None means `['*']` (every field, and `fm` where it exists)."""
    wanted = FIELDS[kind] if select is None else ["ID", *select]
    item: dict[str, Any] = {}
    for field in wanted:
        value: Any = record.get(field)
        text = "" if value is None else str(value).strip()
        if field in INTEGERS:
            zero = 0 if field in ("CONTACT_ID", "COMPANY_ID", "CATEGORY_ID") else None
            value = int(text) if text.isdigit() else zero
        elif field in FLOATS:
            value = float(text) if text else None
        elif field == "CONTACT_IDS":
            value = [int(v) for v in value or []]
        item[SHOWN[kind].get(field, camel(field))] = value
    if select is None:
        item["entityTypeId"] = type_id
        if kind in PHONE_KINDS:
            item["fm"] = [
                {"id": int(p["ID"]), "valueType": p["VALUE_TYPE"], "value": p["VALUE"],
                 "typeId": "PHONE"}
                for p in record.get("PHONE") or []
            ]  # fmt: skip
    return item


def _select(call: Call, kind: str) -> list[str] | None:
    raw = call.get("select")
    listed = crmfilter.values(raw) if raw is not None else ["*"]
    if listed is None:
        listed = [raw]
    if "*" in [str(v) for v in listed]:
        return None
    # Unknown names (and `fm`, which is not a field) are dropped, as the controller does.
    chosen = [NAMES[kind][str(v)] for v in listed if str(v) in NAMES[kind]]
    return [field for field in dict.fromkeys(chosen) if field != "ID"]


def _resolver(kind: str, what: str) -> crmfilter.Resolve:
    def resolve(name: str) -> str:
        field = NAMES[kind].get(name) or NAMES[kind].get(camel(name))
        if field is None:
            # The controller upper-cases names before it checks them (SRC item.php).
            upper = name if name.upper() == name else re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
            raise BxError(
                "INVALID_ARG_VALUE", f"Invalid {what}: field '{upper}' is not allowed in {what}"
            )
        return field

    return resolve


@method("crm.item.list")
def item_list(call: Call) -> Any:
    type_id, kind = entity_kind(call)
    select = _select(call, kind)
    flt = call.get("filter") or {}
    order = call.get("order") or {"ID": "ASC"}
    resolve = _resolver(kind, "filter")
    crmfilter.check(
        flt,
        resolve,
        lambda name: BxError(
            "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' has invalid value"
        ),
    )
    records = list(crm_store(call.portal, kind).values())
    if flt:
        records = [r for r in records if crmfilter.match(r, flt, resolve)]
    if not isinstance(order, dict):
        order = {"ID": "ASC"}
    records = crmfilter.order_records(
        records,
        order,
        _resolver(kind, "order"),
        lambda field, got: BxError(
            "INVALID_ARG_VALUE",
            "Invalid order: allowed sort directions are ASC, DESC. "
            f"But got '{got}' for field '{field}'",
        ),
    )
    page = paged(records, call, key="items")
    page.items = [view(r, kind, type_id, select) for r in page.items]
    return page


def _record(call: Call, kind: str) -> dict[str, Any]:
    item_id = controller_int(call, "id")
    record = crm_store(call.portal, kind).get(str(item_id))
    if record is None:
        raise BxError("NOT_FOUND", "Element not found")
    return record


@method("crm.item.get")
def item_get(call: Call) -> Any:
    type_id, kind = entity_kind(call)
    return {"item": view(_record(call, kind), kind, type_id, None)}


def stored_fields(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """camelCase `fields` of crm.item.add/update as stored names; `fm` phones as `PHONE`."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        field = NAMES[kind].get(str(name)) or NAMES[kind].get(camel(str(name)))
        if field and field not in ("ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID"):
            out[field] = (
                [str(v) for v in crmfilter.values(value) or []]
                if (field == "CONTACT_IDS")
                else value
            )
    fm = crmfilter.values(fields.get("fm"))
    if fm is not None and kind in PHONE_KINDS:
        out["PHONE"] = [
            {"VALUE": str(p.get("value") or ""), "VALUE_TYPE": str(p.get("valueType") or "WORK")}
            for p in fm
            if isinstance(p, dict) and str(p.get("typeId") or "PHONE").upper() == "PHONE"
        ]
    return out


def _fields(call: Call) -> dict[str, Any]:
    fields = call.get("fields")
    if not isinstance(fields, dict):
        raise ControllerError("Could not find value for parameter {fields}")
    return fields


@method("crm.item.add")
def item_add(call: Call) -> Any:
    type_id, kind = entity_kind(call)
    record = crm_create(call, kind, stored_fields(kind, _fields(call)))
    return {"item": view(record, kind, type_id, None)}


def crm_update(record: dict[str, Any], kind: str, fields: dict[str, Any]) -> None:
    """Apply stored-name `fields` to `record` (crm.item.update, the portal UI, the control API)."""
    for field, value in fields.items():
        if field == "PHONE":
            record["PHONE"] = [
                {"ID": str(i + 1), "VALUE_TYPE": p["VALUE_TYPE"], "VALUE": p["VALUE"],
                 "TYPE_ID": "PHONE"}
                for i, p in enumerate(value)
            ]  # fmt: skip
            record["HAS_PHONE"] = "Y" if record["PHONE"] else "N"
        elif field not in ("CONTACT_ID", "CONTACT_IDS", "COMPANY_ID"):
            record[field] = "" if value is None else value
    if {"CONTACT_ID", "CONTACT_IDS", "COMPANY_ID"} & set(fields):
        crm_bind_contacts(record, fields)
    record["DATE_MODIFY"] = iso_now()


@method("crm.item.update")
def item_update(call: Call) -> Any:
    type_id, kind = entity_kind(call)
    record = _record(call, kind)
    crm_update(record, kind, stored_fields(kind, _fields(call)))
    return {"item": view(record, kind, type_id, None)}


@method("crm.item.delete")
def item_delete(call: Call) -> Any:
    _type_id, kind = entity_kind(call)
    record = _record(call, kind)
    del crm_store(call.portal, kind)[record["ID"]]
    return []
