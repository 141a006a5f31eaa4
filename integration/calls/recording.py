"""Recordings: from Unitalk's (expiring) link to Bitrix24, only if the portal wants them.

Normally `attachRecord` on the finished call: Bitrix24 files it on the portal's Drive and hangs
it on the call activity (docs/bitrix24.md §5.4; wav/mp3 only, base64 FILE_CONTENT). A recording
with no Bitrix24 call to carry it (the call could not be synced) goes to the app's own Drive
storage, one folder per month, linked from a CRM timeline comment when the client is known
(docs/bitrix24.md §7.2).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.utils import timezone

from bitrixapp.models import portal_options
from integration.bitrix import crm, disk, telephony
from integration.calls import sync
from integration.calls.models import CallSync
from integration.core import inputs
from integration.core.log import log_context
from integration.unitalk import client as unitalk_client
from integration.unitalk import services as unitalk_services

logger = logging.getLogger(__name__)


def _filename(unitalk_call_id: str, content_type: str) -> str:
    # attachRecord accepts only wav and mp3 (docs/bitrix24.md §5.4).
    ext = "wav" if "wav" in content_type.lower() else "mp3"
    return f"unitalk-{unitalk_call_id}.{ext}"


def recording_store(*, sync_id: int) -> dict[str, Any]:
    """Job `call.recording`. Repeating is safe: attachRecord replaces the record."""
    row = CallSync.objects.select_related("portal", "call").get(pk=sync_id)
    portal, call = row.portal, row.call
    with log_context(call=row.pk):
        if row.stage == CallSync.Stage.RECORDED or row.record_url:
            return {"skipped": "stored"}
        if call is None or not call.recording_url:
            return {"skipped": "no recording"}
        if not portal_options(portal).recordings_to_drive:
            return {"skipped": "portal does not keep recordings"}
        connection = unitalk_services.connection_for_work(portal=portal)
        recording = unitalk_client.recording_download(
            unitalk_services.connection_credentials(connection=connection), url=call.recording_url
        )
        name = _filename(call.unitalk_call_id, recording.content_type)
        if row.bitrix_call_id and row.stage in sync.DONE_STAGES:
            file_id = telephony.attach_record(
                portal,
                call_id=row.bitrix_call_id,
                filename=name,
                content_b64=base64.b64encode(recording.content).decode(),
            )
            CallSync.objects.filter(pk=row.pk, stage=CallSync.Stage.FINISHED).update(
                stage=CallSync.Stage.RECORDED, record_file_id=file_id, recorded_at=timezone.now()
            )
            logger.info(
                "recording attached", extra={"file_id": file_id, "bytes": len(recording.content)}
            )
            return {"file_id": file_id}
        return _to_app_storage(row, name, recording.content)


def _to_app_storage(row: CallSync, name: str, content: bytes) -> dict[str, Any]:
    portal, call = row.portal, row.call
    assert call is not None
    month = (call.started_at or row.created_at).strftime("%Y-%m")
    folder = disk.folder_ensure(portal, parent_id=disk.app_storage_root(portal), name=month)
    obj = disk.file_upload(portal, folder_id=folder, name=name, content=content)
    link = str(obj.get("DETAIL_URL") or obj.get("DOWNLOAD_URL") or "")
    CallSync.objects.filter(pk=row.pk).update(
        record_url=link[:1000],
        record_file_id=inputs.positive_id_or_none(obj.get("FILE_ID") or obj.get("ID")),
        recorded_at=timezone.now(),
    )
    if row.crm_entity_type and row.crm_entity_id:
        crm.timeline_comment_add(
            portal,
            entity_type=row.crm_entity_type,
            entity_id=row.crm_entity_id,
            comment=f"Recording of the call with {row.phone_number}: {link}",
        )
    logger.info("recording filed on the app's Drive", extra={"folder": folder})
    return {"drive_url": link}
