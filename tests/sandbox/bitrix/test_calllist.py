"""crm.calllist.* over real HTTP (docs/agents.md §2.1): the six methods, their documented
errors, the 500-item limit, contacts and companies only, statuses changed only from the portal
UI, and "dial from call list" firing ONEXTERNALCALLSTART with CALL_LIST_ID that register keeps."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
import requests

from tests.sandbox.bitrix.crmkit import control, portal_state, seed
from tests.support.waiting import wait_until


@pytest.fixture
def contacts(sandbox, portal) -> list[int]:
    return seed(sandbox, portal, 3, 5, phone_from="380501000001", fields={"NAME": "C{n}"})["ids"]


def _add(rest, entities, entity_type="CONTACT", **extra):
    return rest("crm.calllist.add", {"ENTITY_TYPE": entity_type, "ENTITIES": entities, **extra})


def test_add_get_list_and_items(contacts, rest):
    list_id = _add(rest, contacts[:3], WEBFORM_ID=1).json()["result"]

    got = rest("crm.calllist.get", {"ID": list_id}).json()["result"]
    listed = rest("crm.calllist.list", {"SELECT": ["ID", "ENTITY_TYPE_ID"]}).json()
    members = rest("crm.calllist.items.get", {"LIST_ID": list_id}).json()["result"]

    assert got == {
        "ID": str(list_id),
        "DATE_CREATE": got["DATE_CREATE"],
        "CREATED_BY_ID": "1",
        "WEBFORM_ID": "1",
        "ENTITY_TYPE_ID": "3",
        "ENTITY_TYPE": "CONTACT",
    }
    assert len(got["DATE_CREATE"]) == len("2025-07-14 08:47:19")
    assert listed["result"] == [{"ID": str(list_id), "ENTITY_TYPE_ID": "3"}]
    assert members == [{"ID": c, "STATUS": "IN_WORK", "ENTITY_TYPE": 3} for c in contacts[:3]]


def test_add_errors_as_documented(contacts, rest):
    cases = {
        "no type": rest("crm.calllist.add", {"ENTITIES": contacts}),
        "no entities": rest("crm.calllist.add", {"ENTITY_TYPE": "CONTACT"}),
        "lead": _add(rest, contacts, "LEAD"),
        "not array": _add(rest, "1,2"),
        "unknown id": _add(rest, [contacts[0], 999]),
        "webform": _add(rest, contacts, WEBFORM_ID=7),
    }

    assert {k: (v.status_code, v.json()["error"], v.json()["error_description"])
            for k, v in cases.items()} == {
        "no type": (400, "ERROR_ARGUMENT", "ENTITY_TYPE is not found"),
        "no entities": (400, "ERROR_ARGUMENT", "ENTITIES is not found"),
        "lead": (400, "ENTITY_TYPE_ERROR", "Incorrect entity type"),
        "not array": (400, "ENTITIES_ERROR", "Entities is not array"),
        "unknown id": (400, "ENTITY_ERROR", "Incorrect entities id"),
        "webform": (400, "WEBFORM_ERROR", "Incorrect webform id"),
    }  # fmt: skip
    assert rest("crm.calllist.list").json()["result"] == []


def test_a_call_list_holds_at_most_500_items(sandbox, portal, rest):
    ids = seed(sandbox, portal, 3, 501)["ids"]

    full = _add(rest, ids[:500])
    over = _add(rest, ids)
    grown = rest(
        "crm.calllist.update",
        {"LIST_ID": full.json()["result"], "ENTITY_TYPE": "CONTACT", "ENTITIES": ids},
    )
    members = rest("crm.calllist.items.get", {"LIST_ID": full.json()["result"]}).json()

    assert full.status_code == 200
    assert (over.status_code, over.json()["error"]) == (400, "ENTITIES_ERROR")
    assert (grown.status_code, grown.json()["error"]) == (400, "ENTITIES_ERROR")
    assert len(members["result"]) == 500
    assert len(rest("crm.calllist.list").json()["result"]) == 1


def test_companies_are_allowed_too(sandbox, portal, rest):
    companies = seed(sandbox, portal, 4, 2, phone_from="380442000000")["ids"]

    list_id = _add(rest, companies, "COMPANY").json()["result"]
    members = rest("crm.calllist.items.get", {"LIST_ID": list_id}).json()["result"]

    assert [(m["ID"], m["ENTITY_TYPE"]) for m in members] == [(companies[0], 4), (companies[1], 4)]


def test_update_replaces_members_keeps_statuses_and_clears_the_webform(
    sandbox, portal, contacts, rest
):
    list_id = _add(rest, contacts[:3], WEBFORM_ID=1).json()["result"]
    control(sandbox, portal, "calllist-status", list_id=list_id, entity_id=contacts[1],
            status="SUCCESS")  # fmt: skip

    answer = rest(
        "crm.calllist.update",
        {"LIST_ID": list_id, "ENTITY_TYPE": "CONTACT", "ENTITIES": [contacts[1], contacts[4]]},
    )
    members = rest("crm.calllist.items.get", {"LIST_ID": list_id}).json()["result"]
    got = rest("crm.calllist.get", {"ID": list_id}).json()["result"]

    assert answer.json()["result"] is True
    assert members == [
        {"ID": contacts[4], "STATUS": "IN_WORK", "ENTITY_TYPE": 3},
        {"ID": contacts[1], "STATUS": "SUCCESS", "ENTITY_TYPE": 3},
    ]
    assert got["WEBFORM_ID"] is None


def test_update_errors_as_documented(sandbox, portal, contacts, rest):
    list_id = _add(rest, contacts[:2]).json()["result"]
    company = seed(sandbox, portal, 4, 1)["ids"]

    def update(**params):
        answer = rest("crm.calllist.update", params).json()
        return answer["error"], answer["error_description"]

    assert update(ENTITY_TYPE="CONTACT", ENTITIES=contacts) == (
        "ERROR_ARGUMENT", "LIST_ID is not found",
    )  # fmt: skip
    assert update(LIST_ID=list_id, ENTITY_TYPE="DEAL", ENTITIES=contacts) == (
        "ENTITY_TYPE_ERROR", "EntityType is incorrect",
    )  # fmt: skip
    assert update(LIST_ID=99, ENTITY_TYPE="CONTACT", ENTITIES=contacts) == (
        "LIST_ID_ERROR", "Incorrect list id or access denied",
    )  # fmt: skip
    assert update(LIST_ID=list_id, ENTITY_TYPE="COMPANY", ENTITIES=company) == (
        "ENTITY_TYPE_ERROR", "Discrepancy between the type of call participants and incoming type",
    )  # fmt: skip
    assert update(LIST_ID=list_id, ENTITY_TYPE="CONTACT", ENTITIES=[999]) == (
        "ENTITIES_ERROR", "Incorrect entities id",
    )  # fmt: skip


def test_get_and_items_errors(contacts, rest):
    list_id = _add(rest, contacts[:1]).json()["result"]

    def error(method, **params):
        answer = rest(method, params)
        return answer.status_code, answer.json()["error"], answer.json()["error_description"]

    assert error("crm.calllist.get") == (400, "ERROR_ARGUMENT", "ID is not found")
    assert error("crm.calllist.get", ID=42) == (400, "LIST_ID_ERROR", "Incorrect list id")
    assert error("crm.calllist.items.get") == (400, "ERROR_ARGUMENT", "LIST_ID is not found")
    assert error("crm.calllist.items.get", LIST_ID=0) == (
        400, "LIST_ID_ERROR", "List id should be positive",
    )  # fmt: skip
    assert error("crm.calllist.items.get", LIST_ID=42) == (
        400, "LIST_ID_ERROR", "Call list is not found",
    )  # fmt: skip
    assert error("crm.calllist.items.get", LIST_ID=list_id, FILTER={"STATUS": "LOST"}) == (
        400, "STATUS_ERROR", "Incorrect status",
    )  # fmt: skip
    assert error("crm.calllist.list", FILTER={"TITLE": "x"})[1] == "100"


def test_statuslist_is_the_default_directory(rest):
    assert rest("crm.calllist.statuslist").json()["result"] == [
        {"ID": 61, "NAME": "In Progress", "SORT": 10, "STATUS_ID": "IN_WORK"},
        {"ID": 63, "NAME": "Successful", "SORT": 20, "STATUS_ID": "SUCCESS"},
        {"ID": 65, "NAME": "Wrong Number", "SORT": 30, "STATUS_ID": "WRONG_NUMBER"},
        {"ID": 67, "NAME": "Do Not Call Again", "SORT": 40, "STATUS_ID": "STOP_CALLING"},
    ]


def test_item_status_changes_only_in_the_portal_ui(sandbox, portal, contacts, rest):
    list_id = _add(rest, contacts[:3]).json()["result"]

    by_rest = rest("crm.calllist.item.update", {"LIST_ID": list_id, "STATUS": "SUCCESS"})
    by_ui = control(sandbox, portal, "calllist-status", list_id=list_id, entity_id=contacts[0],
                    status="STOP_CALLING")  # fmt: skip
    bad = control(sandbox, portal, "calllist-status", list_id=list_id, entity_id=contacts[0],
                  status="LOST")  # fmt: skip
    stopped = rest(
        "crm.calllist.items.get", {"LIST_ID": list_id, "FILTER": {"STATUS": "STOP_CALLING"}}
    ).json()["result"]

    assert (by_rest.status_code, by_rest.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")
    assert by_ui.json() == {"ID": contacts[0], "STATUS": "STOP_CALLING"}
    assert bad.status_code == 400
    assert stopped == [{"ID": contacts[0], "STATUS": "STOP_CALLING", "ENTITY_TYPE": 3}]


def test_deleted_contacts_drop_out_of_the_list(sandbox, portal, contacts, rest):
    list_id = _add(rest, contacts[:2]).json()["result"]

    rest("crm.item.delete", {"entityTypeId": 3, "id": contacts[0]})
    one_left = rest("crm.calllist.items.get", {"LIST_ID": list_id}).json()["result"]
    rest("crm.item.delete", {"entityTypeId": 3, "id": contacts[1]})
    none_left = rest("crm.calllist.items.get", {"LIST_ID": list_id})

    assert [m["ID"] for m in one_left] == [contacts[1]]
    assert none_left.status_code == 403
    assert none_left.json()["error"] == "ACCESS_ERROR"


def test_a_call_list_is_an_activity_found_by_its_subject(contacts, rest):
    list_id = _add(rest, contacts[:1]).json()["result"]

    found = rest("crm.activity.list", {"filter": {"SUBJECT": f"Call list #{list_id}"}}).json()

    assert [(a["PROVIDER_ID"], a["ASSOCIATED_ENTITY_ID"]) for a in found["result"]] == [
        ("CALL_LIST", str(list_id))
    ]


@pytest.fixture
def bound(sandbox, portal, receiver, rest):
    """The app's ONEXTERNALCALLSTART handler bound and installFinish done: events flow."""
    rest("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": f"{receiver.url}/events/"})
    control(sandbox, portal, "install-finish")
    return receiver


def _event(captured) -> dict[str, list[str]]:
    return parse_qs(captured.body.decode())


def test_dial_from_call_list_fires_onexternalcallstart_with_call_list_id(
    sandbox, portal, contacts, rest, bound
):
    list_id = _add(rest, contacts[:3]).json()["result"]

    answer = control(sandbox, portal, "calllist-dial", list_id=list_id, entity_id=contacts[1],
                     user_id=2, wait=True)  # fmt: skip
    event = _event(wait_until(lambda: bound.to("/events/")[-1:], message="the event")[0])
    call = portal_state(sandbox, portal)["calls"][answer.json()["call"]["CALL_ID"]]
    item = portal_state(sandbox, portal)["call_lists"][str(list_id)]["ITEMS"][1]

    assert answer.status_code == 200
    assert event["event"] == ["ONEXTERNALCALLSTART"]
    assert event["data[CALL_LIST_ID]"] == [str(list_id)]
    assert event["data[PHONE_NUMBER]"] == ["+380501000002"]
    assert (event["data[CRM_ENTITY_TYPE]"], event["data[CRM_ENTITY_ID]"]) == (
        ["CONTACT"], [str(contacts[1])],
    )  # fmt: skip
    assert event["data[USER_ID]"] == ["2"]
    assert call["CALL_LIST_ID"] == str(list_id)
    assert item["CALL_ID"] == answer.json()["call"]["CALL_ID"]


def test_ordinary_click_to_call_still_says_call_list_0(sandbox, portal, rest, bound):
    control(sandbox, portal, "click-to-call", phone="+380501112233", wait=True)

    event = _event(wait_until(lambda: bound.to("/events/")[-1:], message="the event")[0])

    assert event["data[CALL_LIST_ID]"] == ["0"]


def test_dial_next_takes_the_first_item_still_in_work(sandbox, portal, contacts, rest):
    list_id = _add(rest, contacts[:2]).json()["result"]
    control(sandbox, portal, "calllist-status", list_id=list_id, entity_id=contacts[0],
            status="SUCCESS")  # fmt: skip

    first = control(sandbox, portal, "calllist-dial", list_id=list_id).json()
    control(sandbox, portal, "calllist-status", list_id=list_id, entity_id=contacts[1],
            status="WRONG_NUMBER")  # fmt: skip
    done = control(sandbox, portal, "calllist-dial", list_id=list_id)
    ghost = control(sandbox, portal, "calllist-dial", list_id=99)

    assert first["event"]["CRM_ENTITY_ID"] == str(contacts[1])
    assert done.status_code == 409
    assert ghost.status_code == 404


def test_register_keeps_call_list_id_into_the_telephony_log(sandbox, portal, contacts, rest):
    list_id = _add(rest, contacts[:1]).json()["result"]

    registered = rest(
        "telephony.externalcall.register",
        {"USER_ID": 1, "PHONE_NUMBER": "+380501000001", "TYPE": 1, "CALL_LIST_ID": list_id,
         "EXTERNAL_CALL_ID": "u-1"},
    ).json()["result"]  # fmt: skip
    finished = rest(
        "telephony.externalcall.finish",
        {"CALL_ID": registered["CALL_ID"], "USER_ID": 1, "DURATION": 12},
    ).json()["result"]
    feed = requests.get(
        f"{sandbox.bitrix_url}/portal/{portal['member_id']}/feed.json?user=1", timeout=10
    ).json()
    log = portal_state(sandbox, portal)["finished"][registered["CALL_ID"]]

    assert (registered["CRM_ENTITY_TYPE"], registered["CRM_ENTITY_ID"]) == ("CONTACT", contacts[0])
    assert "CALL_LIST_ID" not in finished  # finish answers the documented statistics row
    assert log["CALL_LIST_ID"] == str(list_id)
    assert feed["finished"][0]["call_list_id"] == str(list_id)
