"""`crm.calllist.add/update/get/list/items.get/statuslist`: Bitrix24's native call lists.

docs/agents.md §2.1; DOC `api-reference/crm/call-list/*.md`; SRC `crm/lib/calllist/calllist.php`.
Exactly these six methods: no delete (delete the list's activity, "Call list #ID") and **no
method sets an item's status**; statuses change only in the portal UI (the sandbox's call-list
panel and its `calllist-status` control action). Contacts and companies only, at most 500 items
(`ITEMS_LIMIT`). Items whose contact or company is gone are left out of `items.get`, as SRC
`createWithId` drops elements it cannot resolve.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sandbox.bitrix.methods import crmfilter
from sandbox.bitrix.methods.crm import crm_store
from sandbox.bitrix.rest import BxError, Call, method, paged

ITEMS_LIMIT = 500
ENTITY_TYPE_IDS = {"CONTACT": 3, "COMPANY": 4}
#: crm.calllist.statuslist's defaults (DOC example), the `CALL_LIST` status directory.
STATUSES = [
    {"ID": 61, "NAME": "In Progress", "SORT": 10, "STATUS_ID": "IN_WORK"},
    {"ID": 63, "NAME": "Successful", "SORT": 20, "STATUS_ID": "SUCCESS"},
    {"ID": 65, "NAME": "Wrong Number", "SORT": 30, "STATUS_ID": "WRONG_NUMBER"},
    {"ID": 67, "NAME": "Do Not Call Again", "SORT": 40, "STATUS_ID": "STOP_CALLING"},
]
STATUS_IDS = [str(s["STATUS_ID"]) for s in STATUSES]
#: The sandbox portal's CRM forms (a real portal has its own under /crm/webform/).
WEBFORMS = {1: "Call script"}
LIST_FIELDS = ["ID", "DATE_CREATE", "CREATED_BY_ID", "WEBFORM_ID", "ENTITY_TYPE_ID"]


def call_lists(portal: dict[str, Any]) -> dict[str, Any]:
    return portal.setdefault("call_lists", {})


def _required(call: Call, name: str) -> Any:
    value = call.get(name)
    if value is None or value in ("", [], {}):  # PHP empty(): an empty array is missing too
        raise BxError("ERROR_ARGUMENT", f"{name} is not found")
    return value


def _entities(call: Call, raw: Any, kind: str, code: str) -> list[str]:
    listed = crmfilter.values(raw)
    if listed is None:
        raise BxError("ENTITIES_ERROR", "Entities is not array")
    store = crm_store(call.portal, kind)
    ids: list[str] = []
    for value in listed:
        text = str(value).strip()
        if not text.isdigit() or str(int(text)) not in store:
            raise BxError(code, "Incorrect entities id")
        ids.append(str(int(text)))
    ids = list(dict.fromkeys(ids))  # an element is in a list once (SRC addItem keys by id)
    if len(ids) > ITEMS_LIMIT:
        # ITEMS_LIMIT = 500 is SRC; how REST refuses more (code and text) is UNCONFIRMED.
        raise BxError(
            "ENTITIES_ERROR", f"Too many entities: a call list holds at most {ITEMS_LIMIT}"
        )
    return ids


def _webform(call: Call) -> int | None:
    raw = call.get("WEBFORM_ID")
    if raw in (None, "", "0", 0):
        return None
    if not str(raw).strip().isdigit() or int(str(raw)) not in WEBFORMS:
        raise BxError("WEBFORM_ERROR", "Incorrect webform id")
    return int(str(raw))


def calllist_create(call: Call, entity_type: str, entities: list[str], webform: int | None) -> int:
    """A new call list (REST add, or "Create call list" in the portal UI); returns its ID."""
    list_id = call.next_id("call_list")
    now = datetime.now().astimezone()
    activity_id = str(call.next_id("activity"))
    call_lists(call.portal)[str(list_id)] = {
        "ID": str(list_id),
        "DATE_CREATE": now.strftime("%Y-%m-%d %H:%M:%S"),
        "CREATED_BY_ID": str(call.user["ID"]),
        "WEBFORM_ID": None if webform is None else str(webform),
        "ENTITY_TYPE_ID": str(ENTITY_TYPE_IDS[entity_type]),
        "ENTITY_TYPE": entity_type,
        "ACTIVITY_ID": activity_id,
        "ITEMS": [_item(element, rank) for rank, element in enumerate(entities, start=1)],
    }
    # A call list is a CRM activity of provider CALL_LIST (SRC createActivity; DOC index.md).
    call.portal["activities"][activity_id] = {
        "ID": activity_id,
        "OWNER_TYPE_ID": "0",
        "OWNER_ID": str(list_id),
        "ASSOCIATED_ENTITY_ID": str(list_id),
        "TYPE_ID": "6",
        "PROVIDER_ID": "CALL_LIST",
        "PROVIDER_TYPE_ID": "CALL_LIST",
        "SUBJECT": f"Call list #{list_id}",
        "COMPLETED": "N",
        "RESPONSIBLE_ID": str(call.user["ID"]),
        "START_TIME": now.isoformat(timespec="seconds"),
    }
    return list_id


def _item(element: str, rank: int) -> dict[str, Any]:
    return {"ELEMENT_ID": element, "STATUS": "IN_WORK", "RANK": rank * 10, "CALL_ID": None}


def _entity_type(call: Call, message: str) -> str:
    entity_type = str(_required(call, "ENTITY_TYPE")).upper()
    if entity_type not in ENTITY_TYPE_IDS:
        raise BxError("ENTITY_TYPE_ERROR", message)
    return entity_type


@method("crm.calllist.add")
def calllist_add(call: Call) -> Any:
    entity_type = _entity_type(call, "Incorrect entity type")
    entities = _entities(call, _required(call, "ENTITIES"), entity_type, "ENTITY_ERROR")
    return calllist_create(call, entity_type, entities, _webform(call))


def calllist_by_id(call: Call, raw: Any, missing: str) -> dict[str, Any]:
    text = str(raw).strip()
    found = call_lists(call.portal).get(str(int(text))) if text.isdigit() else None
    if found is None:
        raise BxError("LIST_ID_ERROR", missing)
    return found


@method("crm.calllist.update")
def calllist_update(call: Call) -> Any:
    raw_id = _required(call, "LIST_ID")
    entity_type = _entity_type(call, "EntityType is incorrect")
    raw_entities = _required(call, "ENTITIES")
    found = calllist_by_id(call, raw_id, "Incorrect list id or access denied")
    if found["ENTITY_TYPE"] != entity_type:
        raise BxError(
            "ENTITY_TYPE_ERROR",
            "Discrepancy between the type of call participants and incoming type",
        )
    entities = _entities(call, raw_entities, entity_type, "ENTITIES_ERROR")
    # ENTITIES replaces the list; kept elements keep their status; WEBFORM_ID is cleared when
    # omitted (DOC crm-calllist-update.md).
    kept = {i["ELEMENT_ID"]: i for i in found["ITEMS"]}
    found["ITEMS"] = [kept.get(e) or _item(e, rank) for rank, e in enumerate(entities, start=1)]
    webform = _webform(call)
    found["WEBFORM_ID"] = None if webform is None else str(webform)
    return True


def _public(found: dict[str, Any]) -> dict[str, Any]:
    return {k: found[k] for k in ("ID", "DATE_CREATE", "CREATED_BY_ID", "WEBFORM_ID",
                                  "ENTITY_TYPE_ID", "ENTITY_TYPE")}  # fmt: skip


@method("crm.calllist.get")
def calllist_get(call: Call) -> Any:
    return _public(calllist_by_id(call, _required(call, "ID"), "Incorrect list id"))


def _unknown_field(name: str) -> BxError:
    return BxError(
        "100",
        f"Unknown field definition `{name}` ({name}) for "
        "\\Bitrix\\Crm\\CallList\\Internals\\CallList Entity.",
    )


def _list_field(name: str) -> str:
    if name.upper() not in LIST_FIELDS:
        raise _unknown_field(name)
    return name.upper()


@method("crm.calllist.list")
def calllist_list(call: Call) -> Any:
    select = crmfilter.values(call.get("SELECT")) or LIST_FIELDS
    fields = [_list_field(str(name)) for name in select]
    flt = call.get("FILTER") or {}
    crmfilter.check(flt, _list_field, _unknown_field)
    records = [r for r in call_lists(call.portal).values() if crmfilter.match(r, flt, _list_field)]
    order = call.get("ORDER")
    records = crmfilter.order_records(
        records,
        order if isinstance(order, dict) else {"ID": "ASC"},
        _list_field,
        lambda name, got: _unknown_field(name),
    )
    # Paged like every list method, 50 per page (whether it pages at all is UNCONFIRMED).
    return paged([{k: r[k] for k in fields} for r in records], call)


def calllist_items(call: Call, found: dict[str, Any]) -> list[dict[str, Any]]:
    """The list's elements that still exist, by status then rank (SRC loadItems order)."""
    store = crm_store(call.portal, found["ENTITY_TYPE"])
    alive = [i for i in found["ITEMS"] if i["ELEMENT_ID"] in store]
    return sorted(alive, key=lambda i: (STATUS_IDS.index(i["STATUS"]), i["RANK"]))


@method("crm.calllist.items.get")
def calllist_items_get(call: Call) -> Any:
    raw = _required(call, "LIST_ID")
    if not str(raw).strip().lstrip("-").isdigit() or int(str(raw)) < 1:
        raise BxError("LIST_ID_ERROR", "List id should be positive")
    found = calllist_by_id(call, raw, "Call list is not found")
    flt = call.get("FILTER") or {}
    status = flt.get("STATUS") if isinstance(flt, dict) else None
    if status is not None and str(status) not in STATUS_IDS:
        raise BxError("STATUS_ERROR", "Incorrect status")
    items = calllist_items(call, found)
    if found["ITEMS"] and not items:
        raise BxError(
            "ACCESS_ERROR", "You do not have access to the participants of this call list", 403
        )
    return [
        {
            "ID": int(i["ELEMENT_ID"]),
            "STATUS": i["STATUS"],
            "ENTITY_TYPE": int(found["ENTITY_TYPE_ID"]),
        }
        for i in items
        if status is None or i["STATUS"] == str(status)
    ]


@method("crm.calllist.statuslist")
def calllist_statuslist(call: Call) -> Any:
    return [dict(s) for s in STATUSES]
