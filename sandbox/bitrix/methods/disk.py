"""The `disk` scope: the app's storage, folders, uploads (inline or by upload URL), files.

docs/bitrix24.md §7.2.
"""

from __future__ import annotations

import secrets
from typing import Any

from sandbox.bitrix.methods.common import decode_base64, truthy, upload_url
from sandbox.bitrix.rest import BxError, Call, iso_now, method


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
