"""Telephony state rules (docs/bitrix24.md §5) over real HTTP."""

from __future__ import annotations

import base64
import io
import wave

import requests

NOT_FINISHED = "Call is not found in the statistic table. Looks like it is not finished yet."


def _register(rest, **params):
    body = {"USER_ID": 1, "PHONE_NUMBER": "+380501112233", "TYPE": 2, **params}
    return rest("telephony.externalcall.register", body)


def _wav() -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    return base64.b64encode(buffer.getvalue()).decode()


def test_register_with_crm_create_creates_a_lead(rest):
    result = _register(rest, CRM_CREATE=1, EXTERNAL_CALL_ID="u-1").json()["result"]

    assert result["CALL_ID"].startswith("externalCall.")
    assert result["CRM_ENTITY_TYPE"] == "LEAD"
    assert result["CRM_CREATED_ENTITIES"] == [
        {"ENTITY_TYPE": "LEAD", "ENTITY_ID": result["CRM_CREATED_LEAD"]}
    ]
    lead = rest("crm.lead.get", {"id": result["CRM_ENTITY_ID"]}).json()["result"]
    assert lead["PHONE"][0]["VALUE"] == "+380501112233"


def test_register_finds_existing_contact_by_phone(rest):
    contact_id = rest(
        "crm.contact.add", {"fields": {"NAME": "Ivan", "PHONE": [{"VALUE": "380501112233"}]}}
    ).json()["result"]

    result = _register(rest).json()["result"]
    found = rest("crm.duplicate.findbycomm", {"type": "PHONE", "values": ["+380501112233"]})

    assert (result["CRM_ENTITY_TYPE"], result["CRM_ENTITY_ID"]) == ("CONTACT", contact_id)
    assert found.json()["result"] == {"CONTACT": [contact_id]}


def test_register_dedups_same_external_call_id(rest):
    first = _register(rest, EXTERNAL_CALL_ID="u-7").json()["result"]["CALL_ID"]
    second = _register(rest, EXTERNAL_CALL_ID="u-7").json()["result"]["CALL_ID"]
    other = _register(rest, EXTERNAL_CALL_ID="u-8").json()["result"]["CALL_ID"]

    assert first == second
    assert other != first


def test_register_validation_errors_have_empty_error_code(rest):
    no_user = rest("telephony.externalcall.register", {"PHONE_NUMBER": "1", "TYPE": 2})
    bad_type = _register(rest, TYPE=9)
    ghost = _register(rest, USER_ID=99)

    assert no_user.status_code == 400
    assert no_user.json() == {
        "error": "",
        "error_description": "USER_ID or USER_PHONE_INNER should be set",
    }
    assert bad_type.json()["error_description"] == "Unknown TYPE"
    assert ghost.json()["error_description"] == "User is not found or is not active"


def test_register_by_inner_number(rest):
    response = _register(rest, USER_ID=None, USER_PHONE_INNER="102")

    assert response.status_code == 200


def test_second_finish_is_an_error(rest):
    call_id = _register(rest, EXTERNAL_CALL_ID="f-1").json()["result"]["CALL_ID"]

    first = rest(
        "telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 1, "DURATION": 30}
    )
    second = rest("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 1})

    assert first.status_code == 200
    assert first.json()["result"]["CALL_FAILED_CODE"] == "200"
    assert second.status_code == 400
    assert second.json() == {
        "error": "",
        "error_description": "Call is not found (call should be registered prior to finishing",
    }


def test_finish_creates_a_call_activity(rest):
    registered = _register(rest, CRM_CREATE=1).json()["result"]
    rest("telephony.externalcall.finish", {"CALL_ID": registered["CALL_ID"], "USER_ID": 1})

    activities = rest(
        "crm.activity.list",
        {"filter": {"OWNER_TYPE_ID": 1, "OWNER_ID": registered["CRM_ENTITY_ID"]}},
    ).json()["result"]

    assert len(activities) == 1
    assert activities[0]["ORIGIN_ID"] == registered["CALL_ID"]
    assert activities[0]["TYPE_ID"] == "2"


def test_attach_record_before_finish_gives_reference_text(rest):
    call_id = _register(rest).json()["result"]["CALL_ID"]

    response = rest(
        "telephony.externalcall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "r.mp3", "FILE_CONTENT": _wav()},
    )

    assert response.status_code == 400
    assert response.json() == {"error": "", "error_description": NOT_FINISHED}


def test_attach_record_after_finish_wav_only(sandbox, portal, rest, http):
    call_id = _register(rest).json()["result"]["CALL_ID"]
    rest("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 1, "DURATION": 5})

    bad_ext = rest(
        "telephony.externalcall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "r.ogg", "FILE_CONTENT": _wav()},
    )
    bad_b64 = rest(
        "telephony.externalcall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "r.wav", "FILE_CONTENT": "***"},
    )
    good = rest(
        "telephony.externalcall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "r.wav", "FILE_CONTENT": _wav()},
    )

    assert (
        bad_ext.json()["error_description"] == "Wrong file extension. Only wav and mp3 are allowed"
    )
    assert bad_b64.json()["error_description"] == (
        "File content is not properly encoded. Base64 encoding is expected."
    )
    assert "FILE_ID" in good.json()["result"]
    records = http.get(f"{sandbox.bitrix_url}/_sandbox/state").json()["portals"][
        portal["member_id"]
    ]["records"]
    assert records[0]["FILENAME"] == "r.wav"


def test_attach_record_upload_url_mode(rest):
    call_id = _register(rest).json()["result"]["CALL_ID"]
    rest("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 1})

    answer = rest(
        "telephony.externalcall.attachRecord", {"CALL_ID": call_id, "FILENAME": "big.mp3"}
    ).json()["result"]
    uploaded = requests.post(
        answer["uploadUrl"], files={answer["fieldName"]: ("big.mp3", b"ID3fake")}, timeout=5
    )

    assert uploaded.status_code == 200
    assert "FILE_ID" in uploaded.json()["result"]


def test_show_hide_and_search_crm_entities(rest):
    rest("crm.lead.add", {"fields": {"TITLE": "L", "PHONE": [{"VALUE": "+380671234567"}]}})
    call_id = _register(rest, PHONE_NUMBER="+380671234567").json()["result"]["CALL_ID"]

    shown = rest("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [1, 2]})
    hidden = rest("telephony.externalcall.hide", {"CALL_ID": "externalCall.none.1"})
    found = rest("telephony.externalcall.searchCrmEntities", {"PHONE_NUMBER": "380671234567"})

    assert shown.json()["result"] is True
    assert hidden.json()["result"] is False
    assert found.json()["result"][0]["CRM_ENTITY_TYPE"] == "LEAD"


def test_external_lines(rest):
    added = rest("telephony.externalLine.add", {"NUMBER": "380441234567", "NAME": "Unitalk"})
    again = rest("telephony.externalLine.add", {"NUMBER": "380441234567"})
    lines = rest("telephony.externalLine.get").json()["result"]

    assert "ID" in added.json()["result"]
    assert again.json() == {"error": "", "error_description": "Line already exists"}
    assert lines == [{"NUMBER": "380441234567", "NAME": "Unitalk", "CRM_AUTO_CREATE": "Y"}]
