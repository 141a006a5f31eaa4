"""The portal's own behaviour: install POST, ONAPPINSTALL, event delivery after installFinish."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from sandbox import formcodec
from tests.support.waiting import wait_until


def _form(captured) -> dict:
    return formcodec.decode(captured.body.decode())


def test_install_posts_iframe_form_and_form_encoded_onappinstall(sandbox, portal, receiver, http):
    answer = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/install"
    ).json()

    assert answer["install_page"]["status"] == 200
    assert "installed" in answer["install_page"]["body"]
    page = receiver.to("/bitrix/install/")[0]
    assert set(page.query) >= {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    fields = parse_qs(page.body.decode())
    assert {"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "member_id", "status", "PLACEMENT"} <= set(
        fields
    )
    assert fields["PLACEMENT"] == ["DEFAULT"]
    event = receiver.to("/bitrix/events/")[0]
    assert event.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"auth%5Bapplication_token%5D=" in event.body
    body = _form(event)
    assert body["event"] == "ONAPPINSTALL"
    assert body["auth"]["application_token"] == portal["application_token"]
    assert body["auth"]["refresh_token"]
    assert body["auth"]["member_id"] == portal["member_id"]


def _bind(rest, receiver, event):
    return rest("event.bind", {"event": event, "handler": f"{receiver.url}/hooks/{event.lower()}"})


def test_events_wait_for_install_finish(sandbox, portal, rest, receiver, http):
    rest("telephony.externalLine.add", {"NUMBER": "380441234567"})
    _bind(rest, receiver, "ONEXTERNALCALLSTART")
    control = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}"

    before = http.post(f"{control}/click-to-call", json={"phone": "+380501112233", "wait": 1})
    http.post(f"{control}/install-finish")
    after = http.post(f"{control}/click-to-call", json={"phone": "+380509998877"}).json()

    assert before.json()["deliveries"] == []
    captured = wait_until(
        lambda: receiver.to("/hooks/onexternalcallstart"), timeout=5, message="event"
    )
    assert len(captured) == 1
    assert captured[0].headers["content-type"] == "application/x-www-form-urlencoded"
    body = _form(captured[0])
    assert body["event"] == "ONEXTERNALCALLSTART"
    assert body["data"]["CALL_ID"] == after["call"]["CALL_ID"]
    assert body["data"]["PHONE_NUMBER"] == "+380509998877"
    assert body["data"]["LINE_NUMBER"] == "380441234567"
    assert body["data"]["CRM_ENTITY_TYPE"] == "LEAD"
    assert body["auth"]["application_token"] == portal["application_token"]
    assert "refresh_token" not in body["auth"]
    # The portal registered the call itself: finishing it works without a register.
    finished = rest("telephony.externalcall.finish", {"CALL_ID": body["data"]["CALL_ID"]})
    assert finished.status_code == 200


def test_callback_and_uninstall_events(sandbox, portal, rest, receiver, http):
    _bind(rest, receiver, "ONEXTERNALCALLBACKSTART")
    _bind(rest, receiver, "ONAPPUNINSTALL")
    control = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}"
    http.post(f"{control}/install-finish")

    http.post(
        f"{control}/events",
        json={"event": "ONEXTERNALCALLBACKSTART", "data": {"PHONE_NUMBER": "+380501112233"}},
    )
    http.post(f"{control}/uninstall", json={"clean": True})

    callback = _form(receiver.to("/hooks/onexternalcallbackstart")[0])
    uninstall = _form(receiver.to("/hooks/onappuninstall")[0])
    assert callback["data"]["PHONE_NUMBER"] == "+380501112233"
    assert uninstall["data"]["CLEAN"] == "1"
    assert "access_token" not in uninstall["auth"]
    assert uninstall["auth"]["application_token"] == portal["application_token"]
    assert rest("profile").json()["error"] == "invalid_token"


def test_event_bind_get_unbind(rest, receiver):
    _bind(rest, receiver, "onExternalCallStart")
    duplicate = _bind(rest, receiver, "ONEXTERNALCALLSTART")
    listed = rest("event.get").json()["result"]
    removed = rest("event.unbind", {"event": "ONEXTERNALCALLSTART"}).json()["result"]

    assert duplicate.status_code == 400
    assert listed[0]["event"] == "ONEXTERNALCALLSTART"
    assert removed == {"count": 1}


def test_portal_pages_and_bx24_js(sandbox, portal, rest, http):
    control = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}"
    lead = http.post(f"{control}/lead", json={"phone": "+380501112233"}).json()
    rest(
        "placement.bind",
        {"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "http://127.0.0.1:9/bitrix/placement/"},
    )
    http.post(f"{control}/install-finish")

    home = http.get(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/")
    card = http.get(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/lead/{lead['ID']}/")
    script = http.get(f"{sandbox.bitrix_url}/bx24.js")

    assert "/bitrix/app/?DOMAIN=" in home.text
    assert "name='AUTH_ID'" in home.text
    assert "CRM_LEAD_DETAIL_TAB" in card.text
    assert json.dumps({"ID": lead["ID"]}).replace('"', "&quot;") in card.text
    assert "installFinish" in script.text
    assert "callMethod" in script.text


def test_state_survives_restart(tmp_path, receiver):
    from sandbox import server

    path = tmp_path / "state.json"
    first = server.start(app_url=receiver.url, state_path=path)
    import requests

    portal = requests.post(f"{first.bitrix_url}/_sandbox/portals", json={}, timeout=5).json()
    first.stop()
    second = server.start(app_url=receiver.url, state_path=path)
    try:
        state = requests.get(f"{second.bitrix_url}/_sandbox/state", timeout=5).json()
        assert portal["member_id"] in state["portals"]
    finally:
        second.stop()
