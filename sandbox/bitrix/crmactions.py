"""The portal's control actions for the autodialer's CRM (docs/sandbox.md "CRM, call lists,
robots"): seed many CRM items fast, create/update/delete one, what a person does in the portal
UI with call lists (create one from contacts, set an item's status, dial from the list), and run
an automation robot on a lead or deal the way Bitrix24 does. Merged into actions.ACTIONS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import formcodec
from sandbox.bitrix.methods import bizproc, calllist, crmitem
from sandbox.bitrix.methods.common import truthy
from sandbox.bitrix.methods.crm import crm_create, crm_store
from sandbox.bitrix.rest import BxError, Call
from sandbox.httpcore import Response, json_response

if TYPE_CHECKING:
    from sandbox.bitrix.portal import PortalApp

SEED_MAX = 50_000


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _as_user(app: PortalApp, portal: dict[str, Any], user_id: Any) -> Call | None:
    wanted = str(user_id or portal["users"][0]["ID"])
    user = next((u for u in portal["users"] if u["ID"] == wanted), None)
    return None if user is None else Call(app.world, portal, user, "", {})


def _kind(payload: dict[str, Any]) -> tuple[int, str] | None:
    try:
        type_id = int(str(payload.get("entity_type_id") or 3))
    except ValueError:
        return None
    kind = crmitem.ENTITY_TYPES.get(type_id)
    return None if kind is None else (type_id, kind)


def action_crm_seed(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """`count` items of `entity_type_id` (default 3, contacts) in one request: `fields` is a
    template of stored names ("{n}" becomes 1..count), `phone_from` gives item n the phone
    phone_from + n - 1, `with_contact` gives each deal / smart-process item its own contact
    carrying that phone. Answers the new IDs (10,000 contacts take well under a second)."""
    found = _kind(payload)
    count = payload.get("count", 1)
    template = payload.get("fields") or {}
    if found is None:
        return _error("entity_type_id must be one of 1, 2, 3, 4, 1032")
    if not isinstance(count, int) or not 1 <= count <= SEED_MAX:
        return _error(f"count must be an integer from 1 to {SEED_MAX}")
    if not isinstance(template, dict):
        return _error("fields must be an object of stored field names")
    phone_from = str(payload.get("phone_from") or "")
    if phone_from and not phone_from.lstrip("+").isdigit():
        return _error("phone_from must be digits")
    _type_id, kind = found
    with_contact = bool(payload.get("with_contact")) and kind not in ("CONTACT", "COMPANY")
    ids: list[int] = []
    contact_ids: list[int] = []
    with app.store.lock:
        call = _as_user(app, portal, payload.get("user_id"))
        if call is None:
            return _error("no such user on this portal")
        for n in range(1, count + 1):
            fields = {k: v.replace("{n}", str(n)) if isinstance(v, str) else v
                      for k, v in template.items()}  # fmt: skip
            phone = str(int(phone_from.lstrip("+")) + n - 1) if phone_from else ""
            phones = [{"VALUE": f"+{phone}", "VALUE_TYPE": "WORK"}] if phone else []
            if with_contact:
                contact = crm_create(call, "CONTACT", {"NAME": f"Contact {n}", "PHONE": phones})
                contact_ids.append(int(contact["ID"]))
                fields["CONTACT_IDS"] = [contact["ID"]]
            elif phones:
                fields["PHONE"] = phones
            ids.append(int(crm_create(call, kind, fields)["ID"]))
        app.store.touch()
    return json_response({"count": len(ids), "ids": ids, "contact_ids": contact_ids}, 201)


def action_crm_item(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """One item as a portal user edits it: `op` add (default) / update / delete, `fields` in
    crm.item's camelCase (phones as `fm`, or `phones: ["+380..."]`), `id` for update/delete."""
    found = _kind(payload)
    op = str(payload.get("op") or "add")
    fields = payload.get("fields") or {}
    if found is None or op not in ("add", "update", "delete") or not isinstance(fields, dict):
        return _error("entity_type_id 1/2/3/4/1032, op add/update/delete, fields an object")
    type_id, kind = found
    phones = payload.get("phones")
    if isinstance(phones, list):
        fields = {**fields, "fm": [{"typeId": "PHONE", "value": str(p)} for p in phones if p]}
    with app.store.lock:
        call = _as_user(app, portal, payload.get("user_id"))
        if call is None:
            return _error("no such user on this portal")
        store = crm_store(portal, kind)
        stored = crmitem.stored_fields(kind, fields)
        if op == "add":
            record: dict[str, Any] | None = crm_create(call, kind, stored)
        else:
            record = store.get(str(payload.get("id") or ""))
        if record is None:
            return _error(f"no {kind.lower()} {payload.get('id')}", 404)
        if op == "delete":
            del store[record["ID"]]
            app.store.touch()
            return json_response({"deleted": int(record["ID"])})
        if op == "update":
            crmitem.crm_update(record, kind, stored)
        app.store.touch()
        item = crmitem.view(record, kind, type_id, None)
    return json_response({"item": item}, 201 if op == "add" else 200)


def action_calllist(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """The portal UI's "Create call list" from selected contacts or companies, checked as
    crm.calllist.add checks it."""
    with app.store.lock:
        call = _as_user(app, portal, payload.get("user_id"))
        if call is None:
            return _error("no such user on this portal")
        call.params = {
            "ENTITY_TYPE": payload.get("entity_type") or "CONTACT",
            "ENTITIES": payload.get("entities"),
            "WEBFORM_ID": payload.get("webform_id"),
        }
        try:
            list_id = calllist.calllist_add(call)
        except BxError as exc:
            return json_response(exc.body(), exc.status)
        app.store.touch()
    return json_response({"ID": list_id}, 201)


def _list_item(
    portal: dict[str, Any], payload: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    found = calllist.call_lists(portal).get(str(payload.get("list_id") or ""))
    if found is None:
        return None, None
    wanted = str(payload.get("entity_id") or "")
    item = next((i for i in found["ITEMS"] if i["ELEMENT_ID"] == wanted), None)
    return found, item


def action_calllist_status(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    """An item's status, which only the portal UI can change (no REST method does)."""
    status = str(payload.get("status") or "")
    if status not in calllist.STATUS_IDS:
        return _error(f"status must be one of {', '.join(calllist.STATUS_IDS)}")
    with app.store.lock:
        found, item = _list_item(portal, payload)
        if found is None or item is None:
            return _error("no such call list or item", 404)
        item["STATUS"] = status
        item["RANK"] += 5500  # SRC setElementStatus moves a handled item down the list
        app.store.touch()
    return json_response({"ID": int(item["ELEMENT_ID"]), "STATUS": status})


def action_calllist_dial(
    app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]
) -> Response:
    """The portal UI's "Call" on a call-list item (`entity_id`, default the next IN_WORK one): the portal
    registers the call with CALL_LIST_ID and fires ONEXTERNALCALLSTART carrying it
    (docs/agents.md §2.1, docs/bitrix24.md §5.6)."""
    with app.store.lock:
        found, item = _list_item(portal, payload)
        if found is not None and not payload.get("entity_id"):
            call = Call(app.world, portal, portal["users"][0], "", {})
            waiting = [i for i in calllist.calllist_items(call, found) if i["STATUS"] == "IN_WORK"]
            item = waiting[0] if waiting else None
            if item is None:
                return _error("nothing left to call in this list", 409)
        if found is None or item is None:
            return _error("no such call list or item", 404)
        entity = crm_store(portal, found["ENTITY_TYPE"]).get(item["ELEMENT_ID"])
        if entity is None:
            return _error(f"{found['ENTITY_TYPE'].lower()} {item['ELEMENT_ID']} was deleted", 404)
        phone = str(
            payload.get("phone") or (entity["PHONE"][0]["VALUE"] if entity["PHONE"] else "")
        )
        if not phone:
            return _error("this item has no phone number")
    # The list's own click-to-call is the ordinary one plus CALL_LIST_ID (lazy import: actions
    # merges this module's ACTIONS).
    from sandbox.bitrix.actions import action_click_to_call

    answer = action_click_to_call(
        app,
        portal,
        {
            "phone": phone,
            "user_id": payload.get("user_id"),
            "entity_type": found["ENTITY_TYPE"],
            "entity_id": item["ELEMENT_ID"],
            "call_list_id": found["ID"],
            "wait": payload.get("wait"),
        },
    )
    if answer.status == 200:
        with app.store.lock:
            item["CALL_ID"] = json.loads(answer.body)["call"]["CALL_ID"]
            app.store.touch()
    return answer


def action_robot_run(app: PortalApp, portal: dict[str, Any], payload: dict[str, Any]) -> Response:
    """A robot fires on a lead (or deal): POST its HANDLER form-encoded, once, as the portal's
    queue does (bizproc.robot_request; auth with an access token of AUTH_USER_ID, else of the
    item's responsible; no refresh token). `wait` (default true) waits for the answer."""
    kind = str(payload.get("entity_type") or "LEAD").upper()
    given = payload.get("properties") or {}
    if kind not in bizproc.DOCUMENTS or not isinstance(given, dict):
        return _error("entity_type must be LEAD or DEAL; properties an object")
    with app.store.lock:
        robot = bizproc.robots(portal).get(str(payload.get("code") or ""))
        if robot is None:
            return _error(f"no robot {payload.get('code')!r} registered on this portal", 404)
        entity = crm_store(portal, kind).get(str(payload.get("entity_id") or ""))
        if entity is None:
            return _error(f"no {kind.lower()} {payload.get('entity_id')}", 404)
        lowered = {str(k).lower(): v for k, v in given.items()}
        properties: dict[str, Any] = {}
        for name, spec in robot["PROPERTIES"].items():
            value = lowered.get(name.lower(), spec.get("DEFAULT"))
            if value in (None, "") and truthy(spec.get("REQUIRED"), False):
                return _error(f"property {name} is required (the robot's settings need it)")
            properties[name] = value
        user_id = str(robot["AUTH_USER_ID"] or entity.get("ASSIGNED_BY_ID") or "1")
        call = _as_user(app, portal, user_id) or _as_user(app, portal, None)
        assert call is not None
        body, run = bizproc.robot_request(call, robot, kind, entity["ID"], properties)
        app.store.touch()
    body["auth"] = app.world.event_auth(portal, user_id=call.user["ID"], tokens=True, refresh=False)
    encoded = formcodec.encode(body)

    def deliver() -> None:
        status, text = app.world.http_post(
            robot["HANDLER"], encoded.encode(), "application/x-www-form-urlencoded"
        )
        with app.store.lock:
            run.update(status=status, error=text[:500] if status is None or status >= 400 else "")
            if run["state"] == "sent":
                run["state"] = "delivered" if status is not None and status < 400 else "failed"
            app.store.touch()

    if payload.get("wait", True):
        deliver()
    else:
        app.world.pool.submit(deliver)
    with app.store.lock:
        answer = dict(run)
    return json_response({"run": answer, "body": encoded})


Action = Callable[["PortalApp", dict[str, Any], dict[str, Any]], Response]
#: Merged into `actions.ACTIONS` (`POST /_sandbox/portals/<member_id>/<action>`).
ACTIONS: dict[str, Action] = {
    "crm-seed": action_crm_seed,
    "crm-item": action_crm_item,
    "calllist": action_calllist,
    "calllist-status": action_calllist_status,
    "calllist-dial": action_calllist_dial,
    "robot-run": action_robot_run,
}
