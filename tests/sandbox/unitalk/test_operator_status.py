"""The UNCONFIRMED operator-status API of the Unitalk simulator (docs/agents.md §3,
docs/sandbox.md): absent by default exactly as an unknown path, switchable per key or for all,
set/get with validation when present, its own fault knob, the cabinet control action."""

from __future__ import annotations

from typing import Any

import pytest
import requests

KEY = "SandboxKey01"
SET, GET = "phones/inner/setStatus", "phones/inner"


@pytest.fixture
def api(sandbox, http):
    def call(path: str, body: dict[str, Any] | None = None, *, key: str = KEY, **kwargs: Any):
        return http.post(
            f"{sandbox.unitalk_url}/api/{path}",
            json=body or {},
            headers={"Authorization": key},
            **kwargs,
        )

    return call


@pytest.fixture
def ut_settings(sandbox, http):
    def change(**values: Any) -> requests.Response:
        return http.post(f"{sandbox.unitalk_url}/_sandbox/settings", json=values)

    return change


def _cabinet(sandbox, http, **payload: Any) -> requests.Response:
    return http.post(f"{sandbox.unitalk_url}/_sandbox/operator-status", json=payload)


def test_absent_by_default_answering_as_an_unknown_method(api):
    unknown = api("phones/noSuchThing", {"number": "101"})
    for path, body in ((SET, {"number": "101", "status": "PAUSE"}), (GET, {"number": "101"})):
        answer = api(path, body)
        assert (answer.status_code, answer.json()) == (unknown.status_code, unknown.json())
    assert unknown.status_code == 404
    assert unknown.json() == {"status": "Error", "message": "Method not found"}


def test_when_on_set_and_read_back_per_line(api, ut_settings, sandbox, http):
    assert ut_settings(status_api=True).json()["status_api"] is True

    before = api(GET).json()
    paused = api(SET, {"number": "102", "status": "PAUSE"})
    one = api(GET, {"number": "102"}).json()
    api(SET, {"number": "+102", "status": "offline"})  # digits only, any case
    state = _cabinet(sandbox, http).json()

    assert before == {
        "status": "Success",
        "phones": [{"number": "101", "status": "ONLINE"}, {"number": "102", "status": "ONLINE"}],
    }
    assert paused.json() == {"status": "Success"}
    assert one["phones"] == [{"number": "102", "status": "PAUSE"}]
    assert state["lines"] == {"101": "ONLINE", "102": "OFFLINE"}
    assert [(e["number"], e["status"], e["source"]) for e in state["log"]] == [
        ("102", "PAUSE", "api"),
        ("102", "OFFLINE", "api"),
    ]


def test_validation_errors_are_envelopes_and_change_nothing(api, ut_settings, sandbox, http):
    ut_settings(status_api=True)

    no_number = api(SET, {"status": "PAUSE"}).json()
    no_line = api(SET, {"number": "999", "status": "PAUSE"}).json()
    bad_status = api(SET, {"number": "101", "status": "LUNCH"}).json()
    read_unknown = api(GET, {"number": "999"}).json()

    assert no_number == {"status": "Error", "message": "Number is empty"}
    assert no_line == {"status": "Error", "message": "Inner line not found"}
    assert bad_status == {"status": "Error", "message": "Invalid status"}
    assert read_unknown == {"status": "Error", "message": "Inner line not found"}
    assert _cabinet(sandbox, http).json()["log"] == []


def test_the_switch_is_per_key(api, ut_settings, sandbox, http):
    other = http.post(f"{sandbox.unitalk_url}/_sandbox/keys", json={}).json()["api_key"]
    ut_settings(api_key=other, status_api=True)

    assert api(GET, key=other).json()["status"] == "Success"
    assert api(GET).status_code == 404
    ut_settings(status_api=True)
    ut_settings(api_key=other, status_api=False)
    assert api(GET).json()["status"] == "Success"
    assert api(GET, key=other).status_code == 404


def test_a_bad_key_is_refused_before_the_switch(api, ut_settings):
    ut_settings(status_api=True)
    answer = api(SET, {"number": "101", "status": "PAUSE"}, key="wrong")
    assert answer.json() == {"status": "Error", "message": "Authorization invalid"}


@pytest.mark.parametrize(
    ("fault", "http_status"), [("error", 200), ("500", 500), ("502", 502), ("503", 503)]
)
def test_fault_knob_error_kinds(api, ut_settings, sandbox, http, fault, http_status):
    ut_settings(status_api=True, status_api_fault=fault)

    answer = api(SET, {"number": "101", "status": "PAUSE"})
    read = api(GET)
    direct = api("users/list")

    assert (answer.status_code, answer.json()) == (
        http_status,
        {"status": "Error", "message": "Internal error"},
    )
    assert read.status_code == http_status
    assert "users" in direct.json()  # the rest of the API is untouched
    assert _cabinet(sandbox, http).json()["lines"]["101"] == "ONLINE"

    ut_settings(status_api_fault="")
    assert api(SET, {"number": "101", "status": "PAUSE"}).json() == {"status": "Success"}


def test_fault_knob_timeout_and_slow(api, ut_settings):
    ut_settings(status_api=True, status_api_fault="timeout", status_api_fault_seconds=0.2)
    with pytest.raises(requests.ConnectionError):
        api(SET, {"number": "101", "status": "PAUSE"})

    ut_settings(status_api_fault="slow", status_api_fault_seconds=0.5)
    with pytest.raises(requests.ReadTimeout):
        api(GET, timeout=0.2)
    answer = api(SET, {"number": "101", "status": "PAUSE"}, timeout=5)
    assert answer.json() == {"status": "Success"}
    assert answer.elapsed.total_seconds() >= 0.5


def test_generic_faults_reach_the_paths_too(api, ut_settings, sandbox, http):
    ut_settings(status_api=True)
    http.post(
        f"{sandbox.unitalk_url}/_sandbox/faults",
        json={"method": SET, "kind": "500", "rate": 1},
    )
    assert api(SET, {"number": "101", "status": "PAUSE"}).status_code == 500
    assert api(GET).json()["status"] == "Success"


def test_cabinet_sets_a_status_and_validates(api, ut_settings, sandbox, http):
    changed = _cabinet(sandbox, http, number="101", status="pause")
    bad_line = _cabinet(sandbox, http, number="555", status="PAUSE")
    bad_status = _cabinet(sandbox, http, number="101", status="away")
    ut_settings(status_api=True)

    assert changed.json()["lines"]["101"] == "PAUSE"
    assert changed.json()["enabled"] is False
    assert (bad_line.status_code, bad_status.status_code) == (400, 400)
    assert api(GET, {"number": "101"}).json()["phones"] == [{"number": "101", "status": "PAUSE"}]


def test_settings_refuse_unknown_fault_kinds(ut_settings):
    assert ut_settings(status_api_fault="flaky").status_code == 400
    assert ut_settings(status_api_fault_seconds="long").status_code == 400
    assert ut_settings(status_api_fault="503").status_code == 200
