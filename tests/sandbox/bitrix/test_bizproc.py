"""bizproc.robot.* and bizproc.event.send over real HTTP, and a robot run on a lead: the portal
POSTs the robot's HANDLER form-encoded as Bitrix24 does (SRC CBPRestActivity::Execute;
docs/agents.md §2.2) and accepts bizproc.event.send with the run's event_token."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from integration.bitrix import binding
from tests.sandbox.bitrix.crmkit import control, portal_state

PROPERTIES = {
    "campaign": {"Name": {"en": "Campaign"}, "Type": "string", "Required": "Y"},
    "priority": {"Name": "Priority", "Type": "int", "Default": "5"},
}


def _robot(receiver, **overrides: Any) -> dict[str, Any]:
    return {
        "CODE": "add_to_campaign",
        "HANDLER": f"{receiver.url}/robot/",
        "AUTH_USER_ID": 2,
        "NAME": {"en": "Add to Unitalk campaign"},
        "USE_SUBSCRIPTION": "Y",
        "PROPERTIES": PROPERTIES,
        "RETURN_PROPERTIES": {"itemId": {"Name": "Campaign item", "Type": "int"}},
        "DOCUMENT_TYPE": ["crm", "CCrmDocumentLead", "LEAD"],
        **overrides,
    }


@pytest.fixture
def robot(rest, receiver) -> dict[str, Any]:
    answer = rest("bizproc.robot.add", _robot(receiver))
    assert answer.json()["result"] is True, answer.text
    return _robot(receiver)


@pytest.fixture
def lead(sandbox, portal) -> str:
    answer = control(sandbox, portal, "lead", phone="+380501112233", title="Ivan")
    return answer.json()["ID"]


def test_add_list_update_delete(rest, receiver, robot):
    listed = rest("bizproc.robot.list").json()["result"]
    updated = rest(
        "bizproc.robot.update",
        {"CODE": "add_to_campaign", "FIELDS": {"HANDLER": f"{receiver.url}/robot2/"}},
    )
    deleted = rest("bizproc.robot.delete", {"CODE": "add_to_campaign"})
    again = rest("bizproc.robot.delete", {"CODE": "add_to_campaign"})

    assert listed == ["add_to_campaign"]
    assert updated.json()["result"] is True
    assert deleted.json()["result"] is True
    assert again.json() == {
        "error": "ERROR_ACTIVITY_NOT_FOUND",
        "error_description": "Activity or Robot not found!",
    }
    assert rest("bizproc.robot.list").json()["result"] == []


def test_robot_methods_need_an_app_token_and_an_admin(sandbox, portal, http, receiver):
    hook = control(sandbox, portal, "webhook", user_id=1).json()["url"]
    operator = control(sandbox, portal, "tokens", user_id=2).json()["access_token"]

    by_webhook = http.post(f"{hook}bizproc.robot.add", json=_robot(receiver))
    by_operator = http.post(
        f"{portal['client_endpoint']}bizproc.robot.list", json={"auth": operator}
    )

    assert by_webhook.status_code == 403
    assert by_webhook.json() == {
        "error": "ACCESS_DENIED",
        "error_description": "Application context required",
    }
    assert by_operator.status_code == 403
    assert by_operator.json()["error_description"] == "Access denied!"


@pytest.mark.parametrize(
    ("overrides", "error", "text"),
    [
        ({"CODE": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity code!"),
        ({"CODE": "add to campaign"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity code!"),
        ({"NAME": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity NAME!"),
        ({"HANDLER": "ftp://x.example/robot"}, "ERROR_UNSUPPORTED_PROTOCOL", None),
        ({"HANDLER": "http://localhost:8000/robot/"}, "ERROR_WRONG_HANDLER_URL", None),
        ({"PROPERTIES": "campaign"}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Wrong properties array!"),
        ({"PROPERTIES": {"1st": {"Name": "x"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Wrong property key (1st)!"),
        ({"RETURN_PROPERTIES": {"itemId": {"Type": "int"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Empty property NAME (itemId)!"),
        ({"USE_PLACEMENT": "Y"}, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL"),
    ],
)  # fmt: skip
def test_add_validation_errors(rest, receiver, overrides, error, text):
    answer = rest("bizproc.robot.add", _robot(receiver, **overrides))

    assert answer.status_code == 400
    assert answer.json()["error"] == error
    if text:
        assert answer.json()["error_description"] == text
    assert rest("bizproc.robot.list").json()["result"] == []


def test_the_same_code_twice_is_already_installed(rest, receiver, robot):
    answer = rest("bizproc.robot.add", _robot(receiver))

    assert answer.json() == {
        "error": "ERROR_ACTIVITY_ALREADY_INSTALLED",
        "error_description": "Activity or Robot already installed!",
    }


def test_update_without_fields_has_nothing_to_update(rest, robot):
    empty = rest("bizproc.robot.update", {"CODE": "add_to_campaign", "FIELDS": {}})
    unknown = rest("bizproc.robot.update", {"CODE": "nope", "FIELDS": {"NAME": "x"}})

    assert empty.json()["error_description"] == "No fields to update"
    assert unknown.json()["error"] == "ERROR_ACTIVITY_NOT_FOUND"


def test_running_a_robot_posts_the_handler_form_as_bitrix24_does(
    sandbox, portal, receiver, robot, lead, http
):
    before = int(time.time())
    answer = control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=lead,
                     properties={"CAMPAIGN": "spring"})  # fmt: skip

    [posted] = receiver.to("/robot/")
    form = parse_qs(posted.body.decode())
    me = http.post(
        f"{portal['client_endpoint']}user.current", json={"auth": form["auth[access_token]"][0]}
    ).json()["result"]

    assert answer.json()["run"]["state"] == "delivered"
    assert posted.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form["code"] == ["add_to_campaign"]
    assert [form[f"document_id[{i}]"][0] for i in range(3)] == [
        "crm", "CCrmDocumentLead", f"LEAD_{lead}",
    ]  # fmt: skip
    assert [form[f"document_type[{i}]"][0] for i in range(3)] == ["crm", "CCrmDocumentLead", "LEAD"]
    # properties by their registered names, defaults filled in
    assert form["properties[campaign]"] == ["spring"]
    assert form["properties[priority]"] == ["5"]
    assert re.fullmatch(r"[0-9a-f]{14}\.\d{8}", form["workflow_id"][0])
    assert re.fullmatch(r"[0-9a-f]{14}\.\d{8}\|A\d{5}(_\d{5}){3}\|[\w-]{32}\.[0-9a-f]{64}",
                        form["event_token"][0])  # fmt: skip
    assert form["use_subscription"] == ["Y"]
    assert form["timeout_duration"] == ["0"]
    assert before <= int(form["ts"][0]) <= int(time.time())
    assert form["auth[application_token]"] == [portal["application_token"]]
    assert form["auth[member_id]"] == [portal["member_id"]]
    assert form["auth[domain]"] == [portal["domain"]]
    assert form["auth[client_endpoint]"] == [portal["client_endpoint"]]
    assert "auth[refresh_token]" not in form
    assert me["ID"] == "2"  # the robot's AUTH_USER_ID


def test_event_send_completes_the_run_with_its_return_values(sandbox, portal, receiver, robot,
                                                             lead, rest):  # fmt: skip
    control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=lead,
            properties={"campaign": "spring"})  # fmt: skip
    token = parse_qs(receiver.to("/robot/")[0].body.decode())["event_token"][0]

    sent = rest("bizproc.event.send", {"EVENT_TOKEN": token, "LOG_MESSAGE": "queued",
                                        "RETURN_VALUES": {"ITEMID": 77, "other": 1}})  # fmt: skip
    repeat = rest("bizproc.event.send", {"EVENT_TOKEN": token, "RETURN_VALUES": {"itemId": 1}})
    [run] = portal_state(sandbox, portal)["robot_runs"]

    assert sent.json()["result"] is True
    assert repeat.json()["result"] is True  # the activity is closed: ignored, not an error
    assert run["state"] == "completed"
    assert run["return_values"] == {"itemId": 77}  # only RETURN_PROPERTIES, by their own name
    assert run["log_message"] == "queued"
    assert run["events_sent"] == 2


def test_event_send_with_a_forged_or_unknown_token_is_access_denied(sandbox, portal, receiver,
                                                                   robot, lead, rest):  # fmt: skip
    control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=lead,
            properties={"campaign": "x"})  # fmt: skip
    token = parse_qs(receiver.to("/robot/")[0].body.decode())["event_token"][0]
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")

    answers = [
        rest("bizproc.event.send", {"EVENT_TOKEN": forged}),
        rest("bizproc.event.send", {"EVENT_TOKEN": "a|b|c.d"}),
        rest("bizproc.event.send", {}),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert {a.json()["error_description"] for a in answers} == {"Access denied!"}
    assert portal_state(sandbox, portal)["robot_runs"][0]["state"] == "delivered"


def test_any_user_may_send_the_event_even_by_webhook(sandbox, portal, receiver, robot, lead):
    control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=lead,
            properties={"campaign": "x"})  # fmt: skip
    token = parse_qs(receiver.to("/robot/")[0].body.decode())["event_token"][0]
    hook = control(sandbox, portal, "webhook", user_id=2).json()["url"]

    answer = requests.post(f"{hook}bizproc.event.send", json={"event_token": token}, timeout=10)

    assert answer.json()["result"] is True


def test_a_robot_that_does_not_wait_ignores_the_event(sandbox, portal, receiver, rest, lead):
    rest("bizproc.robot.add", _robot(receiver, CODE="fire_and_forget", USE_SUBSCRIPTION="N"))
    control(sandbox, portal, "robot-run", code="fire_and_forget", entity_id=lead,
            properties={"campaign": "x"})  # fmt: skip
    form = parse_qs(receiver.to("/robot/")[0].body.decode())

    answer = rest("bizproc.event.send", {"EVENT_TOKEN": form["event_token"][0]})

    assert form["use_subscription"] == ["N"]
    assert answer.json()["result"] is True
    assert portal_state(sandbox, portal)["robot_runs"][0]["state"] == "delivered"


def test_run_refuses_what_a_portal_could_not_run(sandbox, portal, robot, lead):
    no_robot = control(sandbox, portal, "robot-run", code="nope", entity_id=lead)
    no_lead = control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=999,
                      properties={"campaign": "x"})  # fmt: skip
    no_property = control(sandbox, portal, "robot-run", code="add_to_campaign", entity_id=lead)

    assert no_robot.status_code == 404
    assert no_lead.status_code == 404
    assert no_property.status_code == 400
    assert "campaign" in no_property.json()["error"]
    assert portal_state(sandbox, portal).get("robot_runs", []) == []


def test_a_handler_that_does_not_answer_leaves_a_failed_run(sandbox, portal, rest, lead):
    rest("bizproc.robot.add", {**_robot_at("http://127.0.0.1:9/robot/")})

    answer = control(sandbox, portal, "robot-run", code="down", entity_id=lead,
                     properties={"campaign": "x"})  # fmt: skip

    assert answer.json()["run"]["state"] == "failed"
    assert answer.json()["run"]["status"] is None


def _robot_at(handler: str) -> dict[str, Any]:
    return {"CODE": "down", "HANDLER": handler, "NAME": "Down", "PROPERTIES": PROPERTIES}


def test_a_deal_runs_as_a_deal_document(sandbox, portal, receiver, robot, rest):
    deal = rest("crm.item.add", {"entityTypeId": 2, "fields": {"title": "D"}}).json()
    deal_id = deal["result"]["item"]["id"]

    control(sandbox, portal, "robot-run", code="add_to_campaign", entity_type="DEAL",
            entity_id=deal_id, properties={"campaign": "x"})  # fmt: skip
    form = parse_qs(receiver.to("/robot/")[0].body.decode())

    assert form["document_id[2]"] == [f"DEAL_{deal_id}"]
    assert form["document_type[1]"] == ["CCrmDocumentDeal"]


def test_uninstall_removes_the_apps_robots(sandbox, portal, robot):
    control(sandbox, portal, "uninstall")

    assert portal_state(sandbox, portal)["robots"] == {}


def test_a_non_numeric_auth_user_id_counts_as_none(sandbox, portal, receiver, rest, lead):
    added = rest("bizproc.robot.add", _robot(receiver, CODE="loose", AUTH_USER_ID="admin"))
    control(
        sandbox, portal, "robot-run", code="loose", entity_id=lead, properties={"campaign": "x"}
    )
    form = parse_qs(receiver.to("/robot/")[0].body.decode())

    assert added.json()["result"] is True
    assert form["auth[user_id]"] == ["1"]  # the lead's responsible (UNCONFIRMED fallback)


def test_the_apps_own_robot_registration_is_accepted_and_a_run_carries_the_campaign(
    sandbox, portal, receiver, rest, lead
):
    # Given the app's "Add to campaign" robot exactly as install sends it (only the handler
    # pointed at the receiver: the app's own URL is not served here)
    method, params = binding.robot_command()
    added = rest(method, {**params, "HANDLER": f"{receiver.url}/robot/"})
    again = rest(method, {**params, "HANDLER": f"{receiver.url}/robot/"})

    # When the robot runs on a lead with campaign 12 chosen in its settings
    run = control(sandbox, portal, "robot-run", code=binding.ROBOT_CODE, entity_id=lead,
                  properties={binding.ROBOT_PROPERTY: "12"})  # fmt: skip

    # Then the registration is taken (a second one is "already installed", which install
    # treats as bound) and the handler gets the campaign under the property's own name
    assert added.json()["result"] is True, added.text
    assert again.json()["error"] == "ERROR_ACTIVITY_ALREADY_INSTALLED"
    assert rest("bizproc.robot.list").json()["result"] == [binding.ROBOT_CODE]
    assert run.json()["run"]["state"] == "delivered"
    form = parse_qs(receiver.to("/robot/")[0].body.decode())
    assert form["code"] == [binding.ROBOT_CODE]
    assert form[f"properties[{binding.ROBOT_PROPERTY}]"] == ["12"]
    assert form["document_id[2]"] == [f"LEAD_{lead}"]
    assert form["use_subscription"] == ["N"]  # the run does not wait for bizproc.event.send


def test_a_robot_run_without_the_required_campaign_is_refused_by_the_portal(
    sandbox, portal, receiver, rest, lead
):
    method, params = binding.robot_command()
    rest(method, {**params, "HANDLER": f"{receiver.url}/robot/"})

    run = control(sandbox, portal, "robot-run", code=binding.ROBOT_CODE, entity_id=lead,
                  properties={})  # fmt: skip

    assert run.status_code == 400
    assert receiver.to("/robot/") == []
