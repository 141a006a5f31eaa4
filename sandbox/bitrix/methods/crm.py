"""The `crm` scope: leads, deals, contacts, companies, duplicates by phone, timeline comments,
activities.

docs/bitrix24.md §7.3; `crm_create` and `crm_find_by_phone` also serve telephony's register and
the universal `crm.item.*` methods (crmitem.py), which read the same stores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox.bitrix.methods.common import digits, matches, need_dict
from sandbox.bitrix.rest import BxError, Call, iso_now, method, paged

#: Entity kind -> the portal key holding its records (`DYNAMIC_<id>` live under "dynamic").
STORES = {"LEAD": "leads", "DEAL": "deals", "CONTACT": "contacts", "COMPANY": "companies"}
#: Kinds that carry phones (the `fm` multi-field); deals and smart processes have none of their
#: own (docs/agents.md §2.2).
PHONE_KINDS = ("LEAD", "CONTACT", "COMPANY")
#: Defaults a new record of a kind starts with, on top of the common ones.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "LEAD": {"STATUS_ID": "NEW"},
    "DEAL": {"STAGE_ID": "NEW", "CATEGORY_ID": "0", "OPPORTUNITY": "0", "CURRENCY_ID": "USD"},
    "CONTACT": {"TYPE_ID": "CLIENT"},
    "COMPANY": {"COMPANY_TYPE": "CUSTOMER"},
}


def crm_store(portal: dict[str, Any], kind: str) -> dict[str, Any]:
    """The records of `kind` on `portal` (created on first use: state files of older sandboxes
    have no deals, companies or smart processes)."""
    if kind.startswith("DYNAMIC_"):
        return portal.setdefault("dynamic", {}).setdefault(kind.removeprefix("DYNAMIC_"), {})
    return portal.setdefault(STORES[kind], {})


def _crm_store(call: Call, kind: str) -> dict[str, Any]:
    return crm_store(call.portal, kind)


def _phones(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list):
        return []
    return [
        {
            "ID": str(index + 1),
            "VALUE_TYPE": str(p.get("VALUE_TYPE") or "WORK"),
            "VALUE": str(p.get("VALUE") or ""),
            "TYPE_ID": "PHONE",
        }
        for index, p in enumerate(raw)
        if isinstance(p, dict)
    ]


def crm_create(call: Call, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    entity_id = call.next_id(kind.lower())
    entity: dict[str, Any] = {
        k: v for k, v in fields.items() if isinstance(v, str | int | float | bool)
    }
    now = iso_now()
    entity.update(
        {
            "ID": str(entity_id),
            "TITLE": str(fields.get("TITLE") or ""),
            "NAME": str(fields.get("NAME") or ""),
            "LAST_NAME": str(fields.get("LAST_NAME") or ""),
            "ASSIGNED_BY_ID": str(fields.get("ASSIGNED_BY_ID") or call.user["ID"]),
            "SOURCE_ID": str(fields.get("SOURCE_ID") or "CALL"),
            "DATE_CREATE": now,
            "PHONE": _phones(fields.get("PHONE")) if kind in PHONE_KINDS else [],
        }
    )
    for key, value in KIND_DEFAULTS.get(kind, {}).items():
        entity.setdefault(key, value)
    if kind == "DEAL" or kind.startswith("DYNAMIC_"):
        entity.setdefault("STAGE_ID", f"DT{kind.removeprefix('DYNAMIC_')}_0:NEW")
        entity.setdefault("CATEGORY_ID", "0")
        crm_bind_contacts(entity, fields)
    entity.setdefault("OPENED", "Y")
    entity["DATE_MODIFY"] = now
    entity["CREATED_BY_ID"] = str(call.user["ID"])
    entity["HAS_PHONE"] = "Y" if entity["PHONE"] else "N"
    _crm_store(call, kind)[str(entity_id)] = entity
    return entity


def crm_bind_contacts(entity: dict[str, Any], fields: dict[str, Any]) -> None:
    """`CONTACT_IDS` (a deal's contacts) and `CONTACT_ID` (the first of them) kept in step."""
    raw = fields.get("CONTACT_IDS")
    if isinstance(raw, dict):
        raw = list(raw.values())
    if isinstance(raw, list):
        ids = [str(v) for v in raw if str(v).strip().isdigit() and int(str(v)) > 0]
    elif str(fields.get("CONTACT_ID") or "0").strip() not in ("", "0"):
        ids = [str(fields["CONTACT_ID"]).strip()]
    else:
        ids = [str(v) for v in entity.get("CONTACT_IDS") or []]
    entity["CONTACT_IDS"] = ids
    entity["CONTACT_ID"] = ids[0] if ids else "0"
    entity["COMPANY_ID"] = str(fields.get("COMPANY_ID") or entity.get("COMPANY_ID") or "0")


def crm_find_by_phone(call: Call, phone: str) -> list[tuple[str, dict[str, Any]]]:
    wanted = digits(phone)
    found: list[tuple[str, dict[str, Any]]] = []
    if not wanted:
        return found
    # Contacts first, then leads, then companies (searchCrmEntities, docs/bitrix24.md §5.5).
    for kind in ("CONTACT", "LEAD", "COMPANY"):
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


for _kind in STORES:
    _crm_methods(_kind)


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
    if kind not in STORES or entity_id not in _crm_store(call, kind):
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


#: CRM owner type ids the to-do methods accept (docs/bitrix24.md §7.3; 1032 the smart process).
OWNER_KINDS = {1: "LEAD", 2: "DEAL", 3: "CONTACT", 4: "COMPANY", 1032: "DYNAMIC_1032"}


class ControllerError(BxError):
    """A D7-controller error: `error` is the integer 100 for a missing or mistyped parameter
    (DOC crm-activity-todo-add.md, crm-item troubleshooting: `"error": 100`)."""

    def __init__(self, description: str) -> None:
        super().__init__("100", description)

    def body(self) -> dict[str, Any]:
        return {"error": 100, "error_description": self.description}


def controller_int(call: Call, name: str) -> int:
    """A required integer parameter of a D7-controller method (crm.item.*, crm.activity.todo.*)."""
    raw = call.get(name)
    if raw is None or raw == "":
        raise ControllerError(f"Could not find value for parameter {{{name}}}")
    try:
        return int(str(raw).strip())
    except ValueError as exc:
        raise ControllerError(
            f"Invalid value {raw} to match with parameter {{{name}}}. Should be value of type int."
        ) from exc


@method("crm.activity.todo.add")
def activity_todo_add(call: Call) -> Any:
    """A universal to-do on a CRM item (DOC crm-activity-todo-add.md); read back with
    crm.activity.list (`PROVIDER_ID` = `CRM_TODO`) or /_sandbox/state."""
    owner_type = controller_int(call, "ownerTypeId")
    owner_id = controller_int(call, "ownerId")
    deadline = call.get("deadline")
    if deadline is None or deadline == "":
        raise ControllerError("Could not find value for parameter {deadline}")
    try:
        moment = datetime.fromisoformat(str(deadline).replace("Z", "+00:00"))
    except ValueError as exc:
        # The code is DOC; the text is UNCONFIRMED.
        raise BxError("WRONG_DATETIME_FORMAT", "Wrong datetime format") from exc
    kind = OWNER_KINDS.get(owner_type)
    if kind is None or str(owner_id) not in crm_store(call.portal, kind):
        raise BxError("NOT_FOUND", "Not found.")
    responsible = str(call.get("responsibleId") or call.user["ID"])
    if not any(u["ID"] == responsible for u in call.portal["users"]):
        raise BxError("NOT_FOUND", "Not found.")  # an unknown responsible user: UNCONFIRMED
    activity_id = str(call.next_id("activity"))
    pings = call.get("pingOffsets")
    call.portal["activities"][activity_id] = {
        "ID": activity_id,
        "OWNER_TYPE_ID": str(owner_type),
        "OWNER_ID": str(owner_id),
        "TYPE_ID": "6",
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "SUBJECT": str(call.get("title") or ""),
        "DESCRIPTION": str(call.get("description") or ""),
        "DEADLINE": moment.isoformat(timespec="seconds"),
        "END_TIME": moment.isoformat(timespec="seconds"),
        "START_TIME": iso_now(),
        "COMPLETED": "N",
        "RESPONSIBLE_ID": responsible,
        "AUTHOR_ID": str(call.user["ID"]),
        "PARENT_ID": str(call.get("parentActivityId") or "0"),
        "PING_OFFSETS": [
            int(p) for p in (pings if isinstance(pings, list) else []) if str(p).isdigit()
        ],
        "COLOR_ID": str(call.get("colorId") or ""),
    }
    return {"id": int(activity_id)}
