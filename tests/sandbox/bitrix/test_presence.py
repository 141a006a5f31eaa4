"""What the agent-status poll reads besides the work day (docs/agents.md §1.2, §1.4):
user.get IS_ONLINE / ACTIVE / UF_DEPARTMENT settable per user, department.get with heads,
searchCrmEntities' TIMEMAN_STATUS from the work day, faults that hit timeman.status alone
(also inside batch), and the control actions' validation."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.sandbox.bitrix.crmkit import control


def _ok(answer: requests.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _fault(sandbox, **rule: Any) -> None:
    answer = requests.post(f"{sandbox.bitrix_url}/_sandbox/faults", json=rule, timeout=10)
    assert answer.status_code == 200, answer.text


def test_user_get_reads_online_active_and_departments_set_per_user(sandbox, portal, rest):
    before = _ok(rest("user.get", {"ID": 2}))["result"][0]
    control(sandbox, portal, "department", id=2, name="Sales", head=2)
    control(sandbox, portal, "user-state", user_id=2, online=False, departments=[1, 2])
    control(sandbox, portal, "users", ID="3", NAME="Ira", UF_PHONE_INNER="103", ADMIN=False)
    control(sandbox, portal, "user-state", user_id=3, active=False)

    oleg = _ok(rest("user.get", {"ID": 2}))["result"][0]
    everyone = _ok(rest("user.get"))
    active = _ok(rest("user.get", {"FILTER": {"ACTIVE": True}}))["result"]
    online = _ok(rest("user.get", {"FILTER": {"IS_ONLINE": "Y"}}))["result"]
    picked = _ok(rest("user.get", {"FILTER": {"ACTIVE": True, "@ID": [2, 3]}}))["result"]
    sales = _ok(rest("user.get", {"FILTER": {"UF_DEPARTMENT": 2}}))["result"]

    assert (before["IS_ONLINE"], before["ACTIVE"], before["UF_DEPARTMENT"]) == ("Y", True, [1])
    assert (oleg["IS_ONLINE"], oleg["ACTIVE"], oleg["UF_DEPARTMENT"]) == ("N", True, [1, 2])
    # A deactivated user is still listed unless the filter asks for ACTIVE (docs/agents.md §1.4).
    assert [u["ID"] for u in everyone["result"]] == ["1", "2", "3"]
    assert everyone["total"] == 3
    assert [u["ACTIVE"] for u in everyone["result"]] == [True, True, False]
    assert [u["ID"] for u in active] == ["1", "2"]
    assert [u["ID"] for u in online] == ["1", "3"]
    assert [u["ID"] for u in picked] == ["2"]
    assert [u["ID"] for u in sales] == ["2"]


def test_a_deactivated_user_cannot_call_rest(sandbox, portal, http):
    token = control(sandbox, portal, "tokens", user_id=2).json()["access_token"]
    control(sandbox, portal, "user-state", user_id=2, active=False)
    answer = http.post(f"{portal['client_endpoint']}user.current", json={"auth": token})
    assert answer.status_code == 401
    assert answer.json()["error"] == "authorization_error"


def test_department_get_with_heads_filters_order_and_paging(sandbox, portal, rest):
    root = _ok(rest("department.get"))
    control(sandbox, portal, "department", id=2, name="Sales", head=2)
    control(sandbox, portal, "department", id=3, name="Support", parent=2)
    control(sandbox, portal, "department", id=3, head=1)

    by_id = _ok(rest("department.get", {"ID": 2}))["result"]
    children = _ok(rest("department.get", {"PARENT": 2}))["result"]
    headed_by_1 = _ok(rest("department.get", {"UF_HEAD": 1}))["result"]
    newest_first = _ok(rest("department.get", {"sort": "ID", "order": "DESC"}))["result"]

    assert root["result"] == [{"ID": "1", "NAME": "Sandbox company", "SORT": 500, "UF_HEAD": "1"}]
    assert root["total"] == 1
    assert by_id == [{"ID": "2", "NAME": "Sales", "SORT": 500, "UF_HEAD": "2", "PARENT": "1"}]
    assert [(d["ID"], d["UF_HEAD"]) for d in children] == [("3", "1")]
    assert [d["ID"] for d in headed_by_1] == ["1", "3"]
    assert [d["ID"] for d in newest_first] == ["3", "2", "1"]

    for n in range(4, 56):
        control(sandbox, portal, "department", id=n)
    first = _ok(rest("department.get", {"sort": "ID"}))
    second = _ok(rest("department.get", {"sort": "ID", "start": first["next"]}))
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 55)
    assert [d["ID"] for d in second["result"]] == [str(n) for n in range(51, 56)]
    assert "next" not in second


def test_department_control_refuses_unknown_heads_and_parents(sandbox, portal, rest):
    assert control(sandbox, portal, "department", id=2, head=99).status_code == 400
    assert control(sandbox, portal, "department", id=2, parent=77).status_code == 400
    assert control(sandbox, portal, "department", id="x").status_code == 400
    assert control(sandbox, portal, "department", id=2, head=None).json()["UF_HEAD"] == "0"
    headless = rest("department.get", {"ID": 2}).json()["result"]
    assert headless == [{"ID": "2", "NAME": "Department 2", "SORT": 500, "PARENT": "1"}]


def _search(rest, phone: str) -> str:
    result = _ok(rest("telephony.externalCall.searchCrmEntities", {"PHONE_NUMBER": phone}))
    return result["result"][0]["ASSIGNED_BY"]["TIMEMAN_STATUS"]


def test_search_crm_entities_reports_the_responsible_users_work_day(sandbox, portal, rest):
    phone = "+380501110022"
    lead = {"TITLE": "Ivan", "ASSIGNED_BY_ID": 2, "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}]}
    _ok(rest("crm.lead.add", {"fields": lead}))

    seen = [_search(rest, phone)]
    control(sandbox, portal, "workday", user_id=2, op="open")
    seen.append(_search(rest, phone))
    control(sandbox, portal, "workday", user_id=2, op="pause")
    seen.append(_search(rest, phone))
    control(sandbox, portal, "clock", shift_days=1)
    seen.append(_search(rest, phone))
    control(sandbox, portal, "workday", user_id=2, op="close")
    seen.append(_search(rest, phone))
    control(sandbox, portal, "user-state", user_id=2, timeman=False)
    seen.append(_search(rest, phone))
    control(sandbox, portal, "timeman-module", installed=False)
    seen.append(_search(rest, phone))

    assert seen == [
        "CLOSED",
        "OPENED",
        "PAUSED",
        "EXPIRED",
        "CLOSED",
        "UNAVAILABLE",
        "NOT_INSTALLED",
    ]


def test_a_status_fault_leaves_telephony_working_outside_batch(sandbox, rest):
    _fault(sandbox, method="timeman.status", kind="500", rate=1)

    status = rest("timeman.status", {"USER_ID": 2})
    lines = rest("telephony.externalLine.get")

    assert status.status_code == 500
    assert status.json()["error"] == "INTERNAL_SERVER_ERROR"
    assert lines.status_code == 200


@pytest.mark.parametrize(
    ("kind", "error"), [("500", "INTERNAL_SERVER_ERROR"), ("503", "QUERY_LIMIT_EXCEEDED")]
)
def test_a_status_fault_fails_only_its_commands_inside_batch(sandbox, portal, rest, kind, error):
    _fault(sandbox, method="timeman.status", kind=kind, rate=1)
    cmd = {
        "a": "timeman.status?USER_ID=1",
        "line": "telephony.externalLine.get",
        "b": "timeman.status?USER_ID=2",
        "user": "user.get?ID=2",
    }

    result = _ok(rest("batch", {"cmd": cmd}))["result"]

    assert set(result["result_error"]) == {"a", "b"}
    assert {e["error"] for e in result["result_error"].values()} == {error}
    assert set(result["result"]) == {"line", "user"}


def test_a_partial_status_fault_is_reproducible_per_command(sandbox, rest):
    _fault(sandbox, method="timeman.status", kind="500", rate=0.5, seed=7)
    cmd = {f"u{n}": "timeman.status?USER_ID=2" for n in range(40)}
    failed = set(_ok(rest("batch", {"cmd": cmd}))["result"]["result_error"])
    _fault(sandbox, method="timeman.status", kind="500", rate=0.5, seed=7)
    again = set(_ok(rest("batch", {"cmd": cmd}))["result"]["result_error"])
    assert 0 < len(failed) < 40
    assert failed == again


def test_a_status_timeout_inside_batch_takes_the_whole_answer(sandbox, rest):
    _fault(sandbox, method="timeman.status", kind="timeout", rate=1, seconds=0.2)
    with pytest.raises(requests.ConnectionError):
        rest("batch", {"cmd": {"t": "timeman.status", "l": "telephony.externalLine.get"}})
    only_lines = rest("batch", {"cmd": {"l": "telephony.externalLine.get"}})
    assert _ok(only_lines)["result"]["result_error"] == []


def test_a_star_fault_still_fires_once_per_http_request_not_per_command(sandbox, rest):
    # `*` rules keep their meaning (one draw per request): only named rules reach into batch.
    _fault(sandbox, method="*", kind="latency", rate=1, seconds=0.01)
    cmd = {f"u{n}": "timeman.status?USER_ID=2" for n in range(10)}
    assert _ok(rest("batch", {"cmd": cmd}))["result"]["result_error"] == []


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("workday", {"user_id": 2, "op": "lunch"}),
        ("workday", {"user_id": 99, "op": "open"}),
        ("user-state", {"user_id": 99, "online": False}),
        ("user-state", {"user_id": 2, "departments": [42]}),
        ("user-state", {"user_id": 2, "departments": "x"}),
        ("clock", {"now": "tomorrow"}),
        ("clock", {"shift_days": "many"}),
        ("clock", {"tz_offset": 99999}),
    ],
)
def test_control_actions_refuse_bad_input_and_change_nothing(
    sandbox, portal, rest, action, payload
):
    before = _ok(rest("user.get", {"ID": 2}))["result"][0]
    answer = control(sandbox, portal, action, **payload)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert _ok(rest("user.get", {"ID": 2}))["result"][0] == before
    assert _ok(rest("timeman.status", {"USER_ID": 2}))["result"]["STATUS"] == "CLOSED"


def test_users_seed_makes_many_agents_that_poll_in_batches(sandbox, portal, rest):
    made = control(sandbox, portal, "users-seed", count=200, first_id=3, inner_from=201)
    control(sandbox, portal, "workday", user_id=150, op="open")
    cmd = {f"u{n}": f"timeman.status?USER_ID={n}" for n in range(130, 180)}

    pages = _ok(rest("user.get", {"FILTER": {"ACTIVE": True}}))
    polled = _ok(rest("batch", {"cmd": cmd}))["result"]

    assert made.status_code == 201
    assert made.json()["ids"][:2] == ["3", "4"]
    assert len(made.json()["ids"]) == 200
    assert pages["total"] == 202
    assert pages["next"] == 50
    agent = _ok(rest("user.get", {"ID": 150}))["result"][0]
    assert (agent["NAME"], agent["UF_PHONE_INNER"], agent["ADMIN"]) == ("Agent 150", "348", False)
    assert polled["result"]["u150"]["STATUS"] == "OPENED"
    assert polled["result_error"] == []
    assert control(sandbox, portal, "users-seed", count=0).status_code == 400
    assert control(sandbox, portal, "users-seed", count=9999).status_code == 400
