"""The Unitalk simulator (docs/unitalk.md §7) over real HTTP."""

from __future__ import annotations

import io
import json
import wave

import pytest

from tests.support.waiting import wait_until

KEY = "SandboxKey01"


@pytest.fixture
def api(sandbox, http):
    def call(path, body=None, *, key=KEY, **kwargs):
        headers = {"Authorization": key} if key is not None else {}
        return http.post(
            f"{sandbox.unitalk_url}/api/{path}", json=body or {}, headers=headers, **kwargs
        )

    return call


@pytest.fixture
def hooks(sandbox, receiver, http):
    http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json={"event_delay": 0.05})
    http.post(
        f"{sandbox.unitalk_url}/_sandbox/webhooks", json={"url": f"{receiver.url}/unitalk/hook"}
    )

    def received(count):
        wait_until(
            lambda: len(receiver.to("/unitalk/hook")) >= count, timeout=5, message="webhooks"
        )
        return [json.loads(r.body) for r in receiver.to("/unitalk/hook")]

    return received


def test_bad_key_is_authorization_invalid_with_http_200(api, sandbox, http):
    response = api("users/list", key="wrong")
    missing = api("users/list", key=None)
    http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json={"auth_status": 401})
    strict = api("users/list", key="wrong")

    assert response.status_code == 200
    assert response.json() == {"status": "Error", "message": "Authorization invalid"}
    assert missing.json()["message"] == "Authorization invalid"
    assert strict.status_code == 401


def test_bearer_key_and_new_keys(api, sandbox, http):
    created = http.post(f"{sandbox.unitalk_url}/_sandbox/keys", json={}).json()

    assert api("users/list", key=f"Bearer {KEY}").json()["users"][0]["line"] == "101"
    assert "users" in api("users/list", key=created["api_key"]).json()


def test_direct_call_posts_three_webhooks_in_order(api, hooks, receiver, sandbox, http):
    empty = http.post(
        f"{sandbox.unitalk_url}/api/phones/directCall", headers={"Authorization": KEY}
    )

    answer = http.post(
        f"{sandbox.unitalk_url}/api/phones/directCall",
        data={"sip": "101", "number": "+380501112233", "meta": "bx:42"},
        headers={"Authorization": KEY},
    )
    events = hooks(3)

    assert empty.json()["status"] == "Error"
    assert answer.json() == {"status": "Success"}
    assert [e["event"] for e in events] == ["CALL_NEW", "CALL_ANSWER", "CALL_END"]
    assert receiver.to("/unitalk/hook")[0].headers["content-type"] == "application/json"
    end = events[-1]["call"]
    assert end["meta"] == "bx:42"
    assert end["direction"] == "OUT"
    assert end["from"] == "101"
    assert end["to"] == ["380501112233"]
    assert end["state"] == "ANSWER"
    assert end["secondsTalk"] == 5
    assert events[0]["call"]["state"] is None
    assert len({e["call"]["id"] for e in events}) == 1


def test_direct_call_outcome_noanswer_has_no_answer_event(api, hooks, sandbox, http):
    http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json={"outcome": "busy"})

    api("phones/directCall", {"sip": "102", "number": "380671234567"})
    events = hooks(2)

    assert [e["event"] for e in events] == ["CALL_NEW", "CALL_END"]
    assert events[1]["call"]["state"] == "BUSY"
    assert events[1]["call"]["secondsTalk"] == 0
    assert events[1]["call"]["link"] is None


def test_unknown_sip_is_an_error_envelope(api):
    response = api("phones/directCall", {"sip": "999", "number": "380671234567"})

    assert response.json()["status"] == "Error"


def test_inbound_call_and_recording(api, hooks, sandbox, http):
    http.post(
        f"{sandbox.unitalk_url}/_sandbox/calls",
        json={"from": "380501112233", "line": "101", "outcome": "answer", "talk_time": 12},
    )
    end = hooks(3)[-1]["call"]

    recording = http.get(end["link"])
    assert end["direction"] == "IN"
    assert end["secondsTalk"] == 12
    assert recording.status_code == 200
    with wave.open(io.BytesIO(recording.content)) as wav:
        assert wav.getnframes() > 0


def test_recording_auth_switch(api, hooks, sandbox, http):
    http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json={"rec_auth": True})
    http.post(f"{sandbox.unitalk_url}/_sandbox/calls", json={"from": "380501112233"})
    link = hooks(3)[-1]["call"]["link"]

    assert http.get(link).status_code == 401
    assert http.get(link, headers={"Authorization": KEY}).status_code == 200


def test_history_newest_first_with_count_and_paging(api, hooks, sandbox, http):
    for number in ("380500000001", "380500000002", "380500000003"):
        http.post(
            f"{sandbox.unitalk_url}/_sandbox/calls", json={"from": number, "outcome": "noanswer"}
        )
    hooks(6)
    wait_until(
        lambda: api("history/get", _period()).json()["count"] == 3, timeout=5, message="history"
    )

    page = api("history/get", _period(limit=2, offset=0)).json()
    missed = api("history/get", _period(filter={"lost": True})).json()

    assert page["count"] == 3
    assert len(page["calls"]) == 2
    assert page["warning"] is None
    assert page["calls"][0]["dbid"] > page["calls"][1]["dbid"]
    assert missed["count"] == 3


def _period(**extra):
    return {"dateFrom": "2000-01-01 00:00:00", "dateTo": "2100-01-01 00:00:00", **extra}


def test_history_validation(api):
    assert api("history/get", {"dateFrom": "yesterday"}).json()["message"] == "Wrong FROM date"
    assert api("history/get", _period(offset=-1)).json()["message"] == "Offset is less than 0"
    assert api("history/get", _period(limit="ten")).json()["status"] == "Error"


def test_malformed_json_gets_error_envelope(sandbox, http):
    response = http.post(
        f"{sandbox.unitalk_url}/api/history/get",
        data=b"{oops",
        headers={"Authorization": KEY, "Content-Type": "application/json"},
    )

    assert response.status_code == 200
    assert response.json()["status"] == "Error"


def test_unknown_method_and_get_are_error_envelopes(sandbox, http):
    unknown = http.post(f"{sandbox.unitalk_url}/api/nope/nothing", headers={"Authorization": KEY})
    wrong_verb = http.get(f"{sandbox.unitalk_url}/api/users/list", headers={"Authorization": KEY})

    assert unknown.json()["status"] == "Error"
    assert wrong_verb.json()["status"] == "Error"


def test_weighted_budget_gives_overload_envelope(api, sandbox, http):
    http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json={"budget": 7})

    answers = [api("history/get", _period()).json() for _ in range(3)]

    assert answers[0]["count"] == 0
    assert answers[1]["count"] == 0
    assert answers[2] == {"status": "Error", "message": "Too many requests"}


def test_autodial_actions(api, hooks):
    data = api("autodial/action", {"action": "GET_WITH_DATA"}).json()
    added = api(
        "autodial/action",
        {
            "action": "ADD_NUMBERS",
            "id": 1,
            "numbers": [{"phone": "380500000009", "meta": "lead:1"}],
        },
    )
    started = api("autodial/action", {"action": "START", "id": 1})
    unknown = api("autodial/action", {"action": "DANCE"})
    events = hooks(3)

    assert "audios" in data
    assert added.json()["status"] == "Success"
    assert started.json()["calling"] == 1
    assert unknown.json()["message"] == "Unknown action"
    assert events[-1]["call"]["meta"] == "lead:1"
    wait_until(
        lambda: (
            api("autodial/action", {"action": "GET_CALLS_HISTORY", "id": 1}).json()["items"][0][
                "state"
            ]
            == "ANSWER"
        ),
        timeout=5,
        message="autodial result",
    )


def test_webhook_knobs_duplicates_reorder_and_drop(api, hooks, sandbox, http, receiver):
    http.post(
        f"{sandbox.unitalk_url}/_sandbox/settings",
        json={"duplicate_rate": 1.0, "reorder": True, "drop_call_end": True},
    )

    api("phones/directCall", {"sip": "101", "number": "380501112233"})
    events = hooks(4)

    assert [e["event"] for e in events] == ["CALL_ANSWER", "CALL_ANSWER", "CALL_NEW", "CALL_NEW"]


def test_originate_and_sms(api, hooks):
    call = api("calls/originateNew", {"phone": "380501112233", "meta": "x", "outerLine": None})
    sms = api("calls/originateNew", {"messageType": "SMS", "to": "380501112233", "text": "hi"})
    missing = api("calls/originateNew", {"phone": None})

    assert call.json() == {"status": "Success"}
    assert sms.json() == {"status": "Success"}
    assert missing.json()["status"] == "Error"
    assert hooks(3)[-1]["call"]["source"] == "API"


def test_a_projects_users_are_its_own_copy_of_the_defaults(sandbox):
    # given a project whose users a test changed (tests/e2e/test_campaign_chaos.py adds lines)
    from sandbox.unitalk import app as unitalk_app

    defaults = [dict(u) for u in unitalk_app.DEFAULT_USERS]
    first = sandbox.unitalk.project_create({})
    first["users"].append({"id": 9, "firstName": "Extra", "lastName": "", "line": "109"})

    # when another project is made, then it has the defaults, and the defaults are unchanged
    second = sandbox.unitalk.project_create({})
    assert second["users"] == defaults
    assert defaults == unitalk_app.DEFAULT_USERS
