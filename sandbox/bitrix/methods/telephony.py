"""Bitrix24 REST methods the app uses, with the state rules of docs/bitrix24.md §5-7.

Telephony validation failures are `BxError("", text)` with HTTP 400, exactly as the portal answers
(`"error":""`, docs/bitrix24.md §2.3); texts verbatim as docs/bitrix24.md §5 quotes them, typos too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.bitrix.rest import BxError, Call, Page, iso_now, method, paged
from sandbox.oauth import app_info_result

OWNER_TYPE = {"LEAD": 1, "DEAL": 2, "CONTACT": 3, "COMPANY": 4}
PLACEMENTS = {
    "CALL_CARD",
    "TELEPHONY_ANALYTICS_MENU",
    "LEFT_MENU",
    "REST_APP_URI",
    "PAGE_BACKGROUND_WORKER",
    *(
        f"CRM_{entity}_{where}"
        for entity in ("LEAD", "DEAL", "CONTACT", "COMPANY", "QUOTE", "SMART_INVOICE", "ORDER")
        for where in (
            "DETAIL_TAB",
            "DETAIL_TOOLBAR",
            "DETAIL_ACTIVITY",
            "ACTIVITY_TIMELINE_MENU",
            "LIST_MENU",
            "LIST_TOOLBAR",
        )
    ),
}


def digits(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def need_dict(call: Call, name: str) -> dict[str, Any]:
    value = call.get(name)
    if not isinstance(value, dict):
        raise BxError("ERROR_ARGUMENT", f"Argument '{name}' is null or empty", argument=name)
    return value


def as_int(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise BxError("INVALID_ARG_VALUE", f"Invalid value for {name}") from exc


def truthy(value: Any, default: bool) -> bool:
    # PHP (bool) cast: "0", "" and "N" are false; the string "false" is TRUE (docs/bitrix24.md §5).
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip() not in ("", "0", "N")


def user_by_id(call: Call, user_id: Any) -> dict[str, Any] | None:
    return next((u for u in call.portal["users"] if u["ID"] == str(user_id)), None)


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    return dict(user)


# ---- app, profile, users --------------------------------------------------------------------
@method("app.info")
def app_info(call: Call) -> Any:
    return app_info_result(call.portal)


@method("profile")
def profile(call: Call) -> Any:
    user = call.user
    return {
        "ID": user["ID"],
        "ADMIN": user["ADMIN"],
        "NAME": user["NAME"],
        "LAST_NAME": user["LAST_NAME"],
        "PERSONAL_GENDER": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": 0,
    }


@method("user.current")
def user_current(call: Call) -> Any:
    return public_user(call.user)


@method("user.admin")
def user_admin(call: Call) -> Any:
    return bool(call.user["ADMIN"])


@method("user.get")
def user_get(call: Call) -> Any:
    flt = call.get("FILTER") or call.get("filter") or {}
    if not isinstance(flt, dict):
        flt = {}
    if call.get("ID") is not None:
        flt = {**flt, "ID": call.get("ID")}
    users = [u for u in call.portal["users"] if _matches(u, flt)]
    return paged([public_user(u) for u in users], call)


def _matches(entity: dict[str, Any], flt: dict[str, Any]) -> bool:
    for raw_key, expected in flt.items():
        key = raw_key.lstrip("=<>!%")
        op = raw_key[: len(raw_key) - len(key)]
        actual = entity.get(key.upper(), entity.get(key))
        if key.upper() == "PHONE":
            wanted = digits(expected)
            if not any(digits(p.get("VALUE")) == wanted for p in actual or []):
                return False
            continue
        if isinstance(actual, bool):
            actual = "Y" if actual else "N"
            expected = {"true": "Y", "false": "N", "1": "Y", "0": "N"}.get(
                str(expected).lower(), str(expected)
            )
        if op in (">", ">=", "<", "<="):
            try:
                a, b = float(str(actual)), float(str(expected))
            except (TypeError, ValueError):
                return False
            ok = {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
            if not ok:
                return False
        elif op == "!":
            if str(actual) == str(expected):
                return False
        elif isinstance(expected, list):
            if str(actual) not in [str(e) for e in expected]:
                return False
        elif str(actual) != str(expected):
            return False
    return True


# ---- events and placements ------------------------------------------------------------------
def _require_admin(call: Call) -> None:
    if not call.user["ADMIN"]:
        raise BxError("ACCESS_DENIED", "Access denied!", 403)


@method("event.bind")
def event_bind(call: Call) -> Any:
    _require_admin(call)
    event = str(call.get("event") or "").upper()
    handler = str(call.get("handler") or "")
    if not event:
        raise BxError("ERROR_ARGUMENT", "Argument 'event' is null or empty", argument="event")
    if not event.startswith("ON"):
        raise BxError("ERROR_EVENT_NOT_FOUND", "Event not found")
    if not handler:
        raise BxError("ERROR_ARGUMENT", "Argument 'handler' is null or empty", argument="handler")
    _check_handler_url(handler)
    handlers = call.portal["handlers"]
    if any(h["event"] == event and h["handler"] == handler for h in handlers):
        raise BxError("ERROR_CORE", "Handler already binded")
    handlers.append(
        {
            "id": call.next_id("event_handler"),
            "event": event,
            "handler": handler,
            "auth_type": str(call.get("auth_type") or "0"),
            "offline": 1 if str(call.get("event_type") or "") == "offline" else 0,
        }
    )
    return True


@method("event.get")
def event_get(call: Call) -> Any:
    return [
        {
            "event": h["event"],
            "handler": h["handler"],
            "auth_type": h["auth_type"],
            "offline": h["offline"],
        }
        for h in call.portal["handlers"]
    ]


@method("event.unbind")
def event_unbind(call: Call) -> Any:
    _require_admin(call)
    event = str(call.get("event") or "").upper()
    handler = str(call.get("handler") or "")
    if not event:
        raise BxError("ERROR_ARGUMENT", "Argument 'event' is null or empty", argument="event")
    before = len(call.portal["handlers"])
    call.portal["handlers"] = [
        h
        for h in call.portal["handlers"]
        if not (h["event"] == event and (not handler or h["handler"] == handler))
    ]
    return {"count": before - len(call.portal["handlers"])}


def _check_handler_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BxError("ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol")
    if "." not in (parts.hostname or ""):
        # Bitrix24 rejects handler hosts without a dot (e.g. `localhost`), docs/bitrix24.md §6.1.
        raise BxError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL")


def _placement_args(call: Call) -> tuple[str, str]:
    """PLACEMENT (required, upper-cased) and HANDLER of placement.bind / unbind (admins only)."""
    _require_admin(call)
    code = str(call.get("PLACEMENT") or "").upper()
    handler = str(call.get("HANDLER") or "")
    if not code:
        raise BxError(
            "ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty", argument="PLACEMENT"
        )
    return code, handler


@method("placement.bind")
def placement_bind(call: Call) -> Any:
    code, handler = _placement_args(call)
    if code == "DEFAULT":
        raise BxError("ERROR_ARGUMENT", "Wrong value", argument="PLACEMENT")
    if not handler:
        raise BxError("ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty", argument="HANDLER")
    if code not in PLACEMENTS and not code.startswith("CRM_DYNAMIC_"):
        raise BxError("ERROR_PLACEMENT_NOT_FOUND", "Placement not found")
    _check_handler_url(handler)
    placements = call.portal["placements"]
    if any(p["placement"] == code and p["handler"] == handler for p in placements):
        raise BxError("ERROR_CORE", "Unable to set placement handler: Handler already binded")
    lang_all = call.get("LANG_ALL") if isinstance(call.get("LANG_ALL"), dict) else {}
    placements.append(
        {
            "placement": code,
            "userId": 0,
            "handler": handler,
            "options": [],
            "title": str(call.get("TITLE") or ""),
            "description": str(call.get("DESCRIPTION") or ""),
            "langAll": lang_all,
        }
    )
    return True


@method("placement.unbind")
def placement_unbind(call: Call) -> Any:
    code, handler = _placement_args(call)
    keep, removed = [], 0
    for p in call.portal["placements"]:
        if p["placement"] == code and (not handler or p["handler"] == handler):
            removed += 1
        else:
            keep.append(p)
    call.portal["placements"] = keep
    # count is +1 per found row and +1 per delete (docs/bitrix24.md §6.1).
    return {"count": removed * 2}


@method("placement.get")
def placement_get(call: Call) -> Any:
    return list(call.portal["placements"])


# ---- notifications --------------------------------------------------------------------------
@method("im.notify.system.add", "im.notify.personal.add", "im.notify")
def notify_add(call: Call) -> Any:
    user_id = call.get("USER_ID")
    message = str(call.get("MESSAGE") or "").strip()
    if not user_id or user_by_id(call, user_id) is None:
        raise BxError("USER_ID_EMPTY", "User ID can't be empty")
    if not message:
        raise BxError("MESSAGE_EMPTY", "Message can't be empty")
    tag = str(call.get("TAG") or "")
    notes = call.portal["notifications"]
    if tag:
        # Re-using a TAG replaces the older notices with that tag (docs/bitrix24.md §7.1).
        call.portal["notifications"] = notes = [n for n in notes if n["TAG"] != tag]
    note_id = call.next_id("notify")
    notes.append(
        {
            "ID": note_id,
            "USER_ID": str(user_id),
            "MESSAGE": message,
            "TAG": tag,
            "SUB_TAG": str(call.get("SUB_TAG") or ""),
            "KIND": "personal" if "personal" in str(call.get("_method", "")) else "system",
            "DATE": iso_now(),
        }
    )
    return note_id


# ---- CRM ------------------------------------------------------------------------------------
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
        items = [e for e in _crm_store(call, kind).values() if _matches(e, flt)]
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
    items = [a for a in call.portal["activities"].values() if _matches(a, flt)]
    items.sort(key=lambda a: int(a["ID"]))
    return paged(items, call)


# ---- telephony ------------------------------------------------------------------------------
@method("telephony.externalline.add")
def line_add(call: Call) -> Any:
    number = str(call.get("NUMBER") or "").strip()
    if not number:
        raise BxError("", "NUMBER should not be empty")
    if any(line["NUMBER"] == number for line in call.portal["lines"]):
        raise BxError("", "Line already exists")
    line_id = call.next_id("line")
    call.portal["lines"].append(
        {
            "ID": line_id,
            "NUMBER": number,
            "NAME": str(call.get("NAME") or number),
            "CRM_AUTO_CREATE": str(call.get("CRM_AUTO_CREATE") or "Y"),
        }
    )
    return {"ID": line_id}


@method("telephony.externalline.get")
def line_get(call: Call) -> Any:
    return [
        {"NUMBER": line["NUMBER"], "NAME": line["NAME"], "CRM_AUTO_CREATE": line["CRM_AUTO_CREATE"]}
        for line in call.portal["lines"]
    ]


@method("telephony.externalline.delete")
def line_delete(call: Call) -> Any:
    number = str(call.get("NUMBER") or "").strip()
    if not number:
        raise BxError("", "NUMBER should not be empty")
    call.portal["lines"] = [line for line in call.portal["lines"] if line["NUMBER"] != number]
    return True


def _call_user(call: Call) -> dict[str, Any]:
    user_id = call.get("USER_ID")
    inner = str(call.get("USER_PHONE_INNER") or "")
    if user_id not in (None, "", "0", 0):
        user = user_by_id(call, user_id)
    elif inner:
        user = next((u for u in call.portal["users"] if u["UF_PHONE_INNER"] == inner), None)
    else:
        raise BxError("", "USER_ID or USER_PHONE_INNER should be set")
    if user is None or not user["ACTIVE"]:
        raise BxError("", "User is not found or is not active")
    return user


def register_call(call: Call, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The register rules of docs/bitrix24.md §5.2 (also used by the portal's own click-to-call)."""
    if params is not None:
        call = Call(call.world, call.portal, call.user, call.token, params)
    user = _call_user(call)
    phone = str(call.get("PHONE_NUMBER") or "")
    if not digits(phone):
        raise BxError("", "Unsupported phone number format")
    try:
        call_type = int(str(call.get("TYPE") or "0"))
    except ValueError:
        call_type = 0
    if call_type not in (1, 2, 3, 4, 5):
        raise BxError("", "Unknown TYPE")
    start = call.get("CALL_START_DATE")
    if start:
        try:
            datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        except ValueError as exc:
            raise BxError("", "CALL_START_DATE should be in the ISO-8601 format") from exc
    line = str(call.get("LINE_NUMBER") or "")
    if line and not any(x["NUMBER"] == line for x in call.portal["lines"]):
        # register with an unknown LINE_NUMBER auto-creates the line (SRC, docs/bitrix24.md §5.1).
        call.portal["lines"].append(
            {"ID": call.next_id("line"), "NUMBER": line, "NAME": line, "CRM_AUTO_CREATE": "Y"}
        )
    external_id = call.get("EXTERNAL_CALL_ID")
    show = truthy(call.get("SHOW"), True)
    now = time.time()
    for active in call.portal["calls"].values():
        if (
            active["PORTAL_USER_ID"] == user["ID"]
            and digits(active["PHONE_NUMBER"]) == digits(phone)
            and active["TYPE"] == call_type
            and now - active["CREATED"] < 1800
            and (not line or active["LINE_NUMBER"] == line)
            and (external_id is None or active["EXTERNAL_CALL_ID"] == str(external_id))
        ):
            if show:
                _card(call, active["CALL_ID"], [user["ID"]], True)
            return active["RESPONSE"]
    entity_type = str(call.get("CRM_ENTITY_TYPE") or "").upper()
    entity_id = call.get("CRM_ENTITY_ID")
    created: list[dict[str, Any]] = []
    response: dict[str, Any] = {}
    if not (entity_type and entity_id):
        matches = crm_find_by_phone(call, phone)
        if matches:
            entity_type, entity = matches[0]
            entity_id = entity["ID"]
        elif truthy(call.get("CRM_CREATE"), False):
            lead = crm_create(
                call,
                "LEAD",
                {
                    "TITLE": f"Call {'to' if call_type == 1 else 'from'} {phone}",
                    "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}],
                    "ASSIGNED_BY_ID": user["ID"],
                    "SOURCE_ID": str(call.get("CRM_SOURCE") or "CALL"),
                },
            )
            entity_type, entity_id = "LEAD", lead["ID"]
            created.append({"ENTITY_TYPE": "LEAD", "ENTITY_ID": int(lead["ID"])})
        else:
            entity_type, entity_id = "", None
    call_id = "externalCall.{}.{}".format(
        hashlib.md5(f"{user['ID']}{phone}{secrets.token_hex(8)}".encode()).hexdigest(), int(now)
    )
    response = {
        "CALL_ID": call_id,
        "CRM_CREATED_LEAD": created[0]["ENTITY_ID"] if created else None,
        "CRM_CREATED_ENTITIES": created,
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": int(entity_id) if entity_id not in (None, "") else None,
    }
    call.portal["calls"][call_id] = {
        "CALL_ID": call_id,
        "EXTERNAL_CALL_ID": None if external_id is None else str(external_id),
        "PORTAL_USER_ID": user["ID"],
        "PHONE_NUMBER": phone,
        "TYPE": call_type,
        "LINE_NUMBER": line,
        "CRM_ENTITY_TYPE": entity_type,
        "CRM_ENTITY_ID": response["CRM_ENTITY_ID"],
        "CALL_START_DATE": str(start or iso_now()),
        "CREATED": now,
        "RESPONSE": response,
    }
    if show:
        _card(call, call_id, [user["ID"]], True)
    return response


def _card(call: Call, call_id: str, users: list[str], shown: bool) -> None:
    cards = call.portal["call_cards"]
    for user_id in users:
        cards[:] = [c for c in cards if not (c["CALL_ID"] == call_id and c["USER_ID"] == user_id)]
        cards.append({"CALL_ID": call_id, "USER_ID": user_id, "SHOWN": shown, "AT": time.time()})
    del cards[:-200]


@method("telephony.externalcall.register")
def call_register(call: Call) -> Any:
    return register_call(call)


@method("telephony.externalcall.finish")
def call_finish(call: Call) -> Any:
    call_id = call.get("CALL_ID")
    if not isinstance(call_id, str):
        raise BxError("INVALID_ARGUMENT", "CALL_ID must be a string")
    active = call.portal["calls"].get(call_id)
    if active is None:
        raise BxError("", "Call is not found (call should be registered prior to finishing")
    user = _call_user(call) if (call.get("USER_ID") or call.get("USER_PHONE_INNER")) else None
    try:
        duration = int(str(call.get("DURATION") or 0))
    except ValueError:
        duration = 0
    status_code = str(call.get("STATUS_CODE") or ("200" if duration > 0 else "304"))
    incoming = active["TYPE"] in (2, 3)
    activity_id = call.next_id("activity")
    owner_type = active["CRM_ENTITY_TYPE"]
    call.portal["activities"][str(activity_id)] = {
        "ID": str(activity_id),
        "OWNER_TYPE_ID": str(OWNER_TYPE.get(owner_type, 0)),
        "OWNER_ID": str(active["CRM_ENTITY_ID"] or 0),
        "TYPE_ID": "2",
        "PROVIDER_ID": "VOXIMPLANT_CALL",
        "PROVIDER_TYPE_ID": "CALL",
        "DIRECTION": "1" if incoming else "2",
        "SUBJECT": f"{'Incoming' if incoming else 'Outgoing'} call {active['PHONE_NUMBER']}",
        "COMPLETED": "Y",
        "ORIGIN_ID": call_id,
        "RESPONSIBLE_ID": (user or {}).get("ID", active["PORTAL_USER_ID"]),
        "START_TIME": active["CALL_START_DATE"],
        "END_TIME": iso_now(),
        "DESCRIPTION": f"Duration {duration} s, status {status_code}",
        "FILES": [],
    }
    record = {
        "CALL_ID": call_id,
        "EXTERNAL_CALL_ID": active["EXTERNAL_CALL_ID"],
        "PORTAL_USER_ID": int((user or {}).get("ID", active["PORTAL_USER_ID"])),
        "PHONE_NUMBER": active["PHONE_NUMBER"],
        "PORTAL_NUMBER": active["LINE_NUMBER"],
        "INCOMING": str(active["TYPE"]),
        "CALL_DURATION": duration,
        "CALL_START_DATE": {},
        "CALL_STATUS": 1 if duration > 0 else 0,
        "CALL_VOTE": int(str(call.get("VOTE") or 0) or 0),
        "COST": float(str(call.get("COST") or 0) or 0),
        "COST_CURRENCY": str(call.get("COST_CURRENCY") or ""),
        "CALL_FAILED_CODE": status_code,
        "CALL_FAILED_REASON": str(call.get("FAILED_REASON") or ""),
        "REST_APP_ID": "1",
        "REST_APP_NAME": call.portal["client_id"],
        "CRM_ACTIVITY_ID": activity_id,
        "COMMENT": None,
        "CRM_ENTITY_TYPE": owner_type,
        "CRM_ENTITY_ID": active["CRM_ENTITY_ID"],
        "ID": call.next_id("statistic"),
    }
    del call.portal["calls"][call_id]
    call.portal["finished"][call_id] = record
    _card(call, call_id, [active["PORTAL_USER_ID"]], False)
    return record


AUDIO_EXTENSIONS = ("wav", "mp3")


@method("telephony.externalcall.attachrecord")
def call_attach_record(call: Call) -> Any:
    call_id = str(call.get("CALL_ID") or "")
    filename = str(call.get("FILENAME") or "")
    record_url = str(call.get("RECORD_URL") or "")
    content = call.get("FILE_CONTENT")
    if not filename and not record_url:
        raise BxError(
            "",
            "Required parameters are not set. Request should contain or URL or FILENAME parameter",
        )
    finished = call.portal["finished"].get(call_id)
    if finished is None:
        raise BxError(
            "", "Call is not found in the statistic table. Looks like it is not finished yet."
        )
    if not filename:
        filename = urlsplit(record_url).path.rsplit("/", 1)[-1] or "record.mp3"
        if "." not in filename:
            filename += ".mp3"
    if filename.rsplit(".", 1)[-1].lower() not in AUDIO_EXTENSIONS:
        raise BxError("", "Wrong file extension. Only wav and mp3 are allowed")
    if record_url and content is None:
        data = _download(record_url)
    elif content is None:
        token = f"telephony|{secrets.token_hex(12)}"
        call.world.store.data["uploads"][token] = {
            "kind": "telephony",
            "member_id": call.portal["member_id"],
            "call_id": call_id,
            "filename": filename,
        }
        return {
            "uploadUrl": upload_url(call, token),
            "fieldName": "file",
        }
    else:
        data = decode_base64(content)
    return {"FILE_ID": save_record(call, call_id, filename, data)}


def upload_url(call: Call, token: str) -> str:
    from urllib.parse import urlencode

    return f"{call.world.rest_base(call.portal['member_id'])}upload.json?" + urlencode(
        {"auth": call.token, "token": token}
    )


def decode_base64(content: Any) -> bytes:
    if not isinstance(content, str) or not content.strip():
        raise BxError("", "File content is empty.")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BxError(
            "", "File content is not properly encoded. Base64 encoding is expected."
        ) from exc
    if not data:
        raise BxError("", "File content is empty.")
    return data


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise BxError("", f"Server returns HTTP error code {exc.code}") from exc
    except OSError as exc:
        raise BxError("", f"Server returns HTTP error code 0 ({exc})") from exc


def save_record(call: Call, call_id: str, filename: str, data: bytes) -> int:
    """Store a call record on the portal's Disk and attach it to the call activity."""
    file_id = call.world.store.next_id("file")
    call.world.store.write_file(file_id, data)
    call.portal["records"] = [r for r in call.portal["records"] if r["CALL_ID"] != call_id]
    call.portal["records"].append(
        {
            "CALL_ID": call_id,
            "FILE_ID": file_id,
            "FILENAME": filename,
            "SIZE": len(data),
            "SHA256": hashlib.sha256(data).hexdigest(),
            "DOWNLOAD_URL": f"{call.world.bitrix_url}/_sandbox/files/{file_id}",
        }
    )
    finished = call.portal["finished"].get(call_id)
    if finished:
        activity = call.portal["activities"].get(str(finished["CRM_ACTIVITY_ID"]))
        if activity is not None:
            activity["FILES"] = [{"id": file_id, "url": f"/_sandbox/files/{file_id}"}]
    return file_id


@method("telephony.externalcall.show", "telephony.externalcall.hide")
def call_show_hide(call: Call) -> Any:
    call_id = str(call.get("CALL_ID") or "")
    active = call.portal["calls"].get(call_id)
    if active is None:
        return False
    users = call.get("USER_ID") or active["PORTAL_USER_ID"]
    users = [str(u) for u in (users if isinstance(users, list) else [users])]
    _card(call, call_id, users, call.get("_method") != "telephony.externalcall.hide")
    return True


@method("telephony.externalcall.searchcrmentities")
def call_search_crm(call: Call) -> Any:
    phone = str(call.get("PHONE_NUMBER") or "")
    if not phone:
        raise BxError("", "PHONE_NUMBER is empty")
    result = []
    for kind, entity in crm_find_by_phone(call, phone):
        owner = user_by_id(call, entity["ASSIGNED_BY_ID"]) or call.user
        result.append(
            {
                "CRM_ENTITY_TYPE": kind,
                "CRM_ENTITY_ID": int(entity["ID"]),
                "ASSIGNED_BY_ID": int(owner["ID"]),
                "NAME": f"{entity['NAME']} {entity['LAST_NAME']}".strip() or entity["TITLE"],
                "ASSIGNED_BY": {
                    "ID": owner["ID"],
                    "TIMEMAN_STATUS": "OPENED",
                    "USER_PHONE_INNER": owner["UF_PHONE_INNER"] or None,
                    "WORK_PHONE": None,
                    "PERSONAL_PHONE": None,
                    "PERSONAL_MOBILE": None,
                },
            }
        )
    return result


# ---- disk -----------------------------------------------------------------------------------
def _disk_object(call: Call, object_id: Any) -> dict[str, Any]:
    obj = call.portal["disk"]["objects"].get(str(object_id))
    if obj is None:
        raise BxError("ERROR_NOT_FOUND", f"Could not find entity with id `{object_id}`")
    return obj


def _new_object(call: Call, kind: str, name: str, parent: str | None, **extra: Any) -> dict:
    object_id = str(call.world.store.next_id("disk_object"))
    obj = {
        "ID": object_id,
        "NAME": name,
        "CODE": None,
        "STORAGE_ID": str((call.portal["disk"]["storage"] or {}).get("ID", "1")),
        "TYPE": kind,
        "PARENT_ID": parent,
        "DELETED_TYPE": "0",
        "CREATE_TIME": iso_now(),
        "UPDATE_TIME": iso_now(),
        "DELETE_TIME": None,
        "CREATED_BY": call.user["ID"],
        "UPDATED_BY": call.user["ID"],
        "DELETED_BY": "0",
        "DETAIL_URL": f"{call.world.bitrix_url}/_sandbox/disk/{object_id}",
        **extra,
    }
    if kind == "folder":
        obj["REAL_OBJECT_ID"] = object_id
    call.portal["disk"]["objects"][object_id] = obj
    return obj


@method("disk.storage.getforapp")
def disk_storage(call: Call) -> Any:
    if not call.user["ADMIN"]:
        raise BxError("ACCESS_DENIED", "Access denied!", 403)
    disk = call.portal["disk"]
    if disk["storage"] is None:
        storage_id = str(call.world.store.next_id("storage"))
        disk["storage"] = {"ID": storage_id}
        root = _new_object(call, "folder", "Application storage", None)
        disk["storage"] = {
            "ID": storage_id,
            "NAME": "Application storage",
            "CODE": None,
            "MODULE_ID": "disk",
            "ENTITY_TYPE": "restapp",
            "ENTITY_ID": "1",
            "ROOT_OBJECT_ID": root["ID"],
        }
    return disk["storage"]


def _children(call: Call, parent_id: str) -> list[dict[str, Any]]:
    return [o for o in call.portal["disk"]["objects"].values() if o["PARENT_ID"] == parent_id]


@method("disk.folder.addsubfolder")
def disk_add_folder(call: Call) -> Any:
    parent = _disk_object(call, call.get("id"))
    data = call.get("data")
    name = str(data.get("NAME") or "") if isinstance(data, dict) else ""
    if not name:
        raise BxError("ERROR_ARGUMENT", "Argument 'NAME' is null or empty", argument="NAME")
    if any(o["NAME"] == name for o in _children(call, parent["ID"])):
        raise BxError("DISK_OBJ_22000", "A folder with this name already exists")
    return _new_object(call, "folder", name, parent["ID"])


@method("disk.folder.uploadfile")
def disk_upload(call: Call) -> Any:
    parent = _disk_object(call, call.get("id"))
    data = call.get("data")
    name = str(data.get("NAME") or "") if isinstance(data, dict) else ""
    if not name:
        raise BxError("DISK_BASE_SERVICE_22001", "Could not find name of the file")
    content = call.get("fileContent")
    if content is None:
        token = f"disk|{secrets.token_hex(12)}"
        call.world.store.data["uploads"][token] = {
            "kind": "disk",
            "member_id": call.portal["member_id"],
            "folder_id": parent["ID"],
            "name": name,
            "unique": truthy(call.get("generateUniqueName"), False),
        }
        return {"field": "file", "uploadUrl": upload_url(call, token)}
    if not isinstance(content, list) or len(content) != 2:
        raise BxError("ERROR_COULD_NOT_SAVE_FILE", "fileContent must be [name, base64]")
    payload = decode_base64(content[1])
    return disk_store_file(
        call, parent["ID"], name, payload, truthy(call.get("generateUniqueName"), False)
    )


def disk_store_file(call: Call, folder_id: str, name: str, payload: bytes, unique: bool) -> dict:
    siblings = {o["NAME"] for o in _children(call, folder_id)}
    if name in siblings:
        if not unique:
            raise BxError("DISK_OBJ_22000", "A file with this name already exists")
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, f".{ext}") if dot else (name, "")
        n = 1
        while f"{stem} ({n}){ext}" in siblings:
            n += 1
        name = f"{stem} ({n}){ext}"
    file_id = call.world.store.next_id("file")
    call.world.store.write_file(file_id, payload)
    return _new_object(
        call,
        "file",
        name,
        folder_id,
        FILE_ID=str(file_id),
        SIZE=str(len(payload)),
        DOWNLOAD_URL=f"{call.world.bitrix_url}/_sandbox/files/{file_id}",
    )


@method("disk.file.get")
def disk_file_get(call: Call) -> Any:
    obj = _disk_object(call, call.get("id"))
    if obj["TYPE"] != "file":
        raise BxError("ERROR_NOT_FOUND", f"Could not find entity with id `{call.get('id')}`")
    return obj


__all__ = ["Page", "register_call"]
