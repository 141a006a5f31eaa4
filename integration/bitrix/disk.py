"""Disk methods of Bitrix24 REST: the app's own storage (docs/bitrix24.md §7.2).

Recordings that have no Bitrix24 call to carry them are filed here, one folder per month.
"""

from __future__ import annotations

import base64
from typing import Any

from django.core.cache import cache

from bitrixapp.models import Portal
from integration.bitrix import client
from integration.core.errors import IntegrationError

#: DISK_OBJ_22000 "A folder with this name already exists" / "A file ..." (docs/bitrix24.md §7.2).
ALREADY_EXISTS = "DISK_OBJ_22000"
FOLDER_CACHE_S = 40 * 86400


def app_storage_root(portal: Portal) -> str:
    """ROOT_OBJECT_ID of the app's storage (created on first call; admin token needed)."""
    result = client.call(portal, "disk.storage.getForApp")
    return str(result["ROOT_OBJECT_ID"])


def folder_ensure(portal: Portal, *, parent_id: str, name: str) -> str:
    """Id of folder `name` under `parent_id`, created if missing. Safe to repeat."""
    key = f"bitrix-disk-folder:{portal.member_id}:{parent_id}:{name}"
    cached = cache.get(key)
    if cached:
        return str(cached)
    try:
        result = client.call(
            portal, "disk.folder.addSubFolder", {"id": parent_id, "data": {"NAME": name}}
        )
        folder_id = str(result["ID"])
    except IntegrationError as exc:
        if exc.code != ALREADY_EXISTS:
            raise
        folder_id = _child_folder(portal, parent_id, name)
    cache.set(key, folder_id, timeout=FOLDER_CACHE_S)
    return folder_id


def _child_folder(portal: Portal, parent_id: str, name: str) -> str:
    children = client.list_all(portal, "disk.folder.getChildren", {"id": parent_id})
    for child in children:
        if isinstance(child, dict) and child.get("NAME") == name and child.get("TYPE") == "folder":
            return str(child["ID"])
    raise LookupError(f"folder {name!r} exists under {parent_id} but was not listed")


def file_upload(portal: Portal, *, folder_id: str, name: str, content: bytes) -> dict[str, Any]:
    """Upload a file (base64 in JSON); a name clash gets "name (1).ext" (docs/bitrix24.md §7.2)."""
    result = client.call(
        portal,
        "disk.folder.uploadFile",
        {
            "id": folder_id,
            "data": {"NAME": name},
            "fileContent": [name, base64.b64encode(content).decode()],
            "generateUniqueName": 1,
        },
    )
    return result if isinstance(result, dict) else {}
