"""Issue 15's line knobs of the Unitalk simulator (docs/agents.md §6 "Unitalk" 1, 5, 6;
docs/sandbox.md): registered / unregistered / DND lines, the operator leg of directCall apart
from the client leg, a busy line refusing a second directCall (switchable), and a directCall
whose answer is lost after the call was placed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.support.waiting import wait_until

KEY = "SandboxKey01"


@pytest.fixture
def unitalk(sandbox, http, receiver):
    """(dial, ends, control): directCall from a line, the CALL_ENDs so far, a control POST."""
    base = sandbox.unitalk_url

    def control(path: str, **body: Any) -> requests.Response:
        return http.post(f"{base}/_sandbox/{path}", json=body)

    control("settings", event_delay=0.05, talk_time=7, ring_time=4)
    control("webhooks", url=f"{receiver.url}/hook")

    def dial(sip: str, number: str = "380501112233", **kwargs: Any) -> requests.Response:
        body = {"sip": sip, "number": number, "meta": f"m:{sip}:{number}"}
        return http.post(
            f"{base}/api/phones/directCall", data=body, headers={"Authorization": KEY}, **kwargs
        )

    def events(name: str) -> list[dict[str, Any]]:
        bodies = [json.loads(r.body) for r in receiver.to("/hook")]
        return [b["call"] for b in bodies if b["event"] == name]

    return dial, events, control


def _ended(events, count: int) -> list[dict[str, Any]]:
    return wait_until(lambda: len(events("CALL_END")) >= count and events("CALL_END"), timeout=5)


def test_a_registered_line_talks_to_the_client(unitalk):
    dial, events, _ = unitalk
    assert dial("101").json() == {"status": "Success"}
    end = _ended(events, 1)[0]
    assert (end["state"], end["secondsTalk"], end["secondsFullTime"]) == ("ANSWER", 7, 11)
    assert len(events("CALL_ANSWER")) == 1


@pytest.mark.parametrize(
    ("line_state", "state", "cause"), [("unregistered", "CHANUNAVAIL", 20), ("dnd", "BUSY", 17)]
)
def test_a_line_that_cannot_ring_ends_on_the_operator_leg(unitalk, line_state, state, cause):
    dial, events, control = unitalk
    lines = control("lines", line="102", state=line_state).json()["lines"]

    accepted = dial("102")
    end = _ended(events, 1)[0]

    assert lines == {"101": "registered", "102": line_state}
    assert accepted.json() == {"status": "Success"}  # Unitalk accepts; the leg fails after
    assert (end["state"], end["cause"], end["secondsFullTime"], end["secondsTalk"]) == (
        state,
        cause,
        0,
        0,
    )
    assert end["link"] is None
    assert events("CALL_ANSWER") == []


def test_operator_outcome_noanswer_rings_the_operator_only(unitalk):
    dial, events, control = unitalk
    control("settings", operator_outcome="noanswer")
    dial("101")
    end = _ended(events, 1)[0]
    assert (end["state"], end["secondsTalk"], end["secondsFullTime"]) == ("NOANSWER", 0, 4)


def test_re_registering_the_line_restores_calls(unitalk):
    dial, events, control = unitalk
    control("lines", line="101", state="unregistered")
    dial("101")
    control("lines", line="101", state="registered")
    dial("101", "380671112233")
    states = [e["state"] for e in _ended(events, 2)]
    assert sorted(states) == ["ANSWER", "CHANUNAVAIL"]


def test_busy_line_rejects_a_second_direct_call_when_switched(unitalk):
    dial, events, control = unitalk
    control("settings", busy_mode="reject", talk_time=2, event_delay=0.3)

    first = dial("101")
    live = control("lines").json()["live"]
    second = dial("101", "380671112233")
    other_line = dial("102", "380671112233")

    assert first.json() == {"status": "Success"}
    assert live == {"101": 1}
    assert second.json() == {"status": "Error", "message": "Line is busy"}
    assert other_line.json() == {"status": "Success"}
    _ended(events, 2)
    wait_until(lambda: control("lines").json()["live"] == {}, timeout=5, message="lines free")
    assert dial("101").json() == {"status": "Success"}  # free again after CALL_END


def test_busy_line_plays_a_busy_operator_leg_when_switched(unitalk):
    dial, events, control = unitalk
    control("settings", busy_mode="busy_leg", event_delay=0.3)
    dial("101")
    dial("101", "380671112233")
    ends = {e["to"][0]: e for e in _ended(events, 2)}
    assert ends["380501112233"]["state"] == "ANSWER"
    assert (ends["380671112233"]["state"], ends["380671112233"]["secondsFullTime"]) == ("BUSY", 0)


def test_busy_lines_are_allowed_by_default(unitalk):
    dial, events, _ = unitalk
    assert dial("101").json() == dial("101", "380671112233").json() == {"status": "Success"}
    assert [e["state"] for e in _ended(events, 2)] == ["ANSWER", "ANSWER"]


def test_an_inbound_call_makes_its_line_busy(unitalk):
    dial, _events, control = unitalk
    control("settings", busy_mode="reject", event_delay=0.3)
    control("calls", **{"from": "380931112233", "line": "102"})
    assert dial("102").json()["message"] == "Line is busy"


def test_a_lost_answer_still_places_the_call(unitalk):
    dial, events, control = unitalk
    control("settings", answer_lost=1)
    with pytest.raises(requests.ConnectionError):
        dial("101")
    end = _ended(events, 1)[0]
    assert end["meta"] == "m:101:380501112233"
    assert end["state"] == "ANSWER"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("lines", {"line": "999", "state": "dnd"}),
        ("lines", {"line": "101", "state": "asleep"}),
        ("settings", {"operator_outcome": "maybe"}),
        ("settings", {"busy_mode": "queue"}),
        ("settings", {"answer_lost": 2}),
        ("settings", {"answer_lost": "often"}),
    ],
)
def test_line_knobs_refuse_bad_values(unitalk, path, body):
    _, _, control = unitalk
    assert control(path, **body).status_code == 400
    assert control("lines").json()["lines"] == {"101": "registered", "102": "registered"}


def test_concurrent_direct_calls_on_one_line_let_exactly_one_through(unitalk):
    from concurrent.futures import ThreadPoolExecutor

    dial, events, control = unitalk
    control("settings", busy_mode="reject", event_delay=0.5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: dial("101", f"38050000000{n}").json(), range(8)))
    assert sorted(a["status"] for a in answers) == ["Error"] * 7 + ["Success"]
    assert len(_ended(events, 1)) == 1


def test_real_time_calls_ring_and_talk_for_their_own_seconds(unitalk):
    dial, events, control = unitalk
    assert control("settings", real_time="yes").status_code == 400
    control("settings", real_time=True, ring_time=1, talk_time=1)
    started = time.monotonic()
    assert dial("101").json() == {"status": "Success"}

    wait_until(lambda: events("CALL_ANSWER"), timeout=5)
    answered = time.monotonic() - started
    wait_until(lambda: events("CALL_END"), timeout=5)
    ended = time.monotonic() - started

    # CALL_NEW comes after event_delay (0.05 s), the answer 1 s later, the end 1 s after that
    assert 1.0 <= answered < 1.6
    assert 2.0 <= ended < 2.6
    assert ended - answered >= 0.95
