"""crm.activity.todo.add over real HTTP (DOC crm-activity-todo-add.md), read back with
crm.activity.list and the control state."""

from __future__ import annotations

from tests.sandbox.bitrix.crmkit import control, portal_state


def test_todo_on_a_lead_reads_back_through_activity_list(sandbox, portal, rest):
    lead = control(sandbox, portal, "lead", phone="+380501112233").json()["ID"]

    added = rest(
        "crm.activity.todo.add",
        {"ownerTypeId": 1, "ownerId": lead, "deadline": "2026-02-03T15:00:00+02:00",
         "title": "Campaign spring: BUSY 3/3", "description": "Call back", "responsibleId": 2,
         "pingOffsets": [0, 15]},
    )  # fmt: skip
    todo_id = added.json()["result"]["id"]
    listed = rest(
        "crm.activity.list", {"filter": {"PROVIDER_ID": "CRM_TODO", "OWNER_ID": lead}}
    ).json()["result"]
    stored = portal_state(sandbox, portal)["activities"][str(todo_id)]

    assert added.status_code == 200
    assert [a["ID"] for a in listed] == [str(todo_id)]
    assert (listed[0]["SUBJECT"], listed[0]["DESCRIPTION"]) == ("Campaign spring: BUSY 3/3",
                                                                "Call back")  # fmt: skip
    assert listed[0]["DEADLINE"] == "2026-02-03T15:00:00+02:00"
    assert (listed[0]["OWNER_TYPE_ID"], listed[0]["RESPONSIBLE_ID"]) == ("1", "2")
    assert stored["PING_OFFSETS"] == [0, 15]
    assert stored["COMPLETED"] == "N"


def test_todo_on_a_deal_defaults_to_the_callers_user(rest):
    deal = rest("crm.item.add", {"entityTypeId": 2, "fields": {"title": "D"}}).json()
    deal_id = deal["result"]["item"]["id"]

    todo = rest("crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": deal_id,
                                          "deadline": "2026-02-03T15:00:00"}).json()  # fmt: skip
    listed = rest("crm.activity.list", {"filter": {"ID": todo["result"]["id"]}}).json()["result"]

    assert listed[0]["RESPONSIBLE_ID"] == "1"
    assert listed[0]["SUBJECT"] == ""


def test_todo_errors(sandbox, portal, rest):
    lead = control(sandbox, portal, "lead", phone="+380501112233").json()["ID"]
    base = {"ownerTypeId": 1, "ownerId": lead, "deadline": "2026-02-03T15:00:00"}

    def error(**params):
        answer = rest("crm.activity.todo.add", {**base, **params})
        return answer.status_code, answer.json()["error"], answer.json()["error_description"]

    assert error(ownerTypeId=None) == (
        400, 100, "Could not find value for parameter {ownerTypeId}",
    )  # fmt: skip
    assert error(ownerId="abc") == (
        400, 100, "Invalid value abc to match with parameter {ownerId}. Should be value of type int.",
    )  # fmt: skip
    assert error(deadline=None)[1:] == (100, "Could not find value for parameter {deadline}")
    assert error(deadline="tomorrow")[:2] == (400, "WRONG_DATETIME_FORMAT")
    assert error(ownerId=999) == (400, "NOT_FOUND", "Not found.")
    assert error(ownerTypeId=7) == (400, "NOT_FOUND", "Not found.")
    assert rest("crm.activity.list", {"filter": {"PROVIDER_ID": "CRM_TODO"}}).json()["result"] == []
