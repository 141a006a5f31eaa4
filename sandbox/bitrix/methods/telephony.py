"""The `telephony` scope: external lines, register/finish/attachRecord, show/hide, CRM search.

The state rules of docs/bitrix24.md §5.

Telephony validation failures are `BxError("", text)` with HTTP 400, exactly as the portal answers
(`"error":""`, docs/bitrix24.md §2.3); texts verbatim as docs/bitrix24.md §5 quotes them, typos too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.bitrix.methods import timeman
from sandbox.bitrix.methods.common import decode_base64, digits, truthy, upload_url, user_by_id
from sandbox.bitrix.methods.crm import crm_create, crm_find_by_phone
from sandbox.bitrix.rest import BxError, Call, iso_now, method

OWNER_TYPE = {"LEAD": 1, "DEAL": 2, "CONTACT": 3, "COMPANY": 4}


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
        # Kept so the telephony log shows which call list a call belongs to (docs/agents.md §2.1).
        "CALL_LIST_ID": str(call.get("CALL_LIST_ID") or "0"),
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
    call.portal["finished"][call_id] = {**record, "CALL_LIST_ID": active.get("CALL_LIST_ID", "0")}
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
                    "TIMEMAN_STATUS": timeman.search_status(call.portal, owner["ID"]),
                    "USER_PHONE_INNER": owner["UF_PHONE_INNER"] or None,
                    "WORK_PHONE": None,
                    "PERSONAL_PHONE": None,
                    "PERSONAL_MOBILE": None,
                },
            }
        )
    return result
