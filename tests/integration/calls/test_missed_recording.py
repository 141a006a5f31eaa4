"""Missed inbound calls land with a person; recordings land on the call (or the app's Drive)."""

from __future__ import annotations

import base64

import pytest
import responses

from bitrixapp.models import PortalOptions, portal_options
from integration.calls import services, sync
from integration.calls.models import Call, CallSync, FailedCall
from integration.models import Job, Notification
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    RECORDING,
    REST,
    FakeBitrix,
    bitrix,
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


def _end(call: Call) -> CallSync:
    services.call_changed(call=call, event="CALL_END")
    return CallSync.objects.get(call=call)


def test_missed_inbound_call_is_finished_304_with_an_item_for_the_crm_owner(
    portal, connection, bitrix
):
    # given an inbound call nobody answered, from a number whose contact belongs to user 7
    row = _end(make_call(portal, state="NOANSWER"))

    # when the pipeline runs
    run_jobs()

    # then Bitrix24 has it as missed, and user 7 has a callback item and a notification
    row.refresh_from_db()
    assert bitrix.finished[row.bitrix_call_id]["STATUS_CODE"] == "304"
    item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
    assert item.dedupe_key == "missed:380501112233"
    assert item.owner_user_id == 7
    assert item.sync_id == row.pk
    note = Notification.objects.get(kind="call.missed")
    assert note.user_id == 7


def test_missed_call_owner_falls_back_to_the_user_who_rang(portal, connection, bitrix):
    options = portal_options(portal)
    options.missed_owner_rule = PortalOptions.MissedOwnerRule.LAST_USER
    options.save()

    _end(make_call(portal, state="NOANSWER", line="101"))
    run_jobs()

    assert FailedCall.objects.get(kind=FailedCall.Kind.MISSED).owner_user_id == 5
    assert "telephony.externalcall.searchcrmentities" not in bitrix.methods()


def test_missed_call_owner_is_the_default_user_when_nobody_is_known(portal, connection, bitrix):
    options = portal_options(portal)
    options.missed_owner_rule = PortalOptions.MissedOwnerRule.LAST_USER
    options.save()

    _end(make_call(portal, state="NOANSWER", line="999"))
    run_jobs()

    assert FailedCall.objects.get(kind=FailedCall.Kind.MISSED).owner_user_id == 9


def test_the_same_number_missed_twice_is_one_item_with_two_occurrences(portal, connection, bitrix):
    _end(make_call(portal, state="NOANSWER"))
    _end(make_call(portal, state="NOANSWER"))

    run_jobs()

    item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
    assert item.occurrences == 2


def test_answered_outgoing_call_to_the_number_resolves_its_missed_item(portal, connection, bitrix):
    _end(make_call(portal, state="NOANSWER"))
    run_jobs()

    _end(make_call(portal, direction=Call.Direction.OUT, state="ANSWER"))
    run_jobs()

    item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
    assert item.state == FailedCall.State.RESOLVED
    assert item.resolution.startswith("called back")


def test_answered_call_gets_its_recording_attached(portal, connection, bitrix, rsps):
    # given an answered call with a recording at Unitalk
    rsps.add(responses.GET, RECORDING, body=WAV, content_type="audio/wav")
    row = _end(make_call(portal, recording=RECORDING))

    # when the pipeline runs
    run_jobs()

    # then the record went to the finished call as base64 wav
    row.refresh_from_db()
    assert row.stage == CallSync.Stage.RECORDED
    assert row.record_file_id == 555
    [attach] = [p for m, p in bitrix.requests if m == "telephony.externalcall.attachrecord"]
    assert attach["FILENAME"].endswith(".wav")
    assert base64.b64decode(attach["FILE_CONTENT"]) == WAV


def test_recordings_are_not_stored_when_the_portal_does_not_want_them(
    portal, connection, bitrix, rsps
):
    options = portal_options(portal)
    options.recordings_to_drive = False
    options.save()
    row = _end(make_call(portal, recording=RECORDING))

    run_jobs()

    assert not Job.objects.filter(kind=sync.KIND_RECORDING).exists()
    assert CallSync.objects.get(pk=row.pk).stage == CallSync.Stage.FINISHED


def test_recording_without_a_bitrix_call_goes_to_the_apps_drive(portal, connection, bitrix, rsps):
    # given a call whose sync died (Bitrix24 refused the register) but that has a recording
    def refuse(params):
        raise LookupError("User is not found or is not active")

    bitrix.register = refuse  # type: ignore[method-assign]
    rsps.add(responses.GET, RECORDING, body=WAV, content_type="audio/wav")
    rsps.add(
        responses.POST, f"{REST}disk.storage.getForApp", json={"result": {"ROOT_OBJECT_ID": "1"}}
    )
    rsps.add(responses.POST, f"{REST}disk.folder.addSubFolder", json={"result": {"ID": "2"}})
    rsps.add(
        responses.POST,
        f"{REST}disk.folder.uploadFile",
        json={"result": {"ID": "3", "FILE_ID": "77", "DETAIL_URL": "https://x/disk/3"}},
    )
    row = _end(make_call(portal, recording=RECORDING))

    # when the pipeline runs
    run_jobs()

    # then the recording is on the app's Drive and the row links it
    row.refresh_from_db()
    assert row.record_url == "https://x/disk/3"
    assert row.record_file_id == 77
    uploads = [c for c in rsps.calls if c.request.url.endswith("disk.folder.uploadFile")]
    assert len(uploads) == 1
