"""crm.item.list / get / add / update / delete over real HTTP (docs/agents.md §2.2): entity types
1, 2, 3, 4 and the smart process 1032, filter prefixes, paging, phones only with select ['*'],
deals resolving to contacts, errors as documented, and seeding 10,000 items fast."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.bitrix.crmkit import control, items, seed


def _add(rest, entity_type_id: int, **fields) -> int:
    answer = rest("crm.item.add", {"entityTypeId": entity_type_id, "fields": fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["item"]["id"]


def test_list_pages_120_contacts_fifty_at_a_time_each_exactly_once(sandbox, portal, rest):
    seed(sandbox, portal, 3, 120, phone_from="380500000001")

    pages, start = [], 0
    while start is not None:
        body = rest("crm.item.list", {"entityTypeId": 3, "start": start}).json()
        pages.append(body)
        start = body.get("next")

    assert [len(p["result"]["items"]) for p in pages] == [50, 50, 20]
    assert [p.get("next") for p in pages] == [50, 100, None]
    assert {p["total"] for p in pages} == {120}
    ids = [item["id"] for p in pages for item in p["result"]["items"]]
    assert sorted(ids) == list(range(1, 121))


def test_start_minus_one_gives_a_page_without_total_or_next(sandbox, portal, rest):
    seed(sandbox, portal, 3, 60)

    body = rest("crm.item.list", {"entityTypeId": 3, "start": -1}).json()

    assert len(body["result"]["items"]) == 50
    assert "total" not in body
    assert "next" not in body


def test_phones_come_only_with_select_star(sandbox, portal, rest):
    seed(sandbox, portal, 3, 1, phone_from="380501112233", fields={"NAME": "Contact {n}"})

    named = items(rest, entityTypeId=3, select=["id", "name", "fm", "PHONE"])
    star = items(rest, entityTypeId=3, select=["*"])
    omitted = items(rest, entityTypeId=3)

    # `fm` is not a field: naming it (or PHONE) in select gives no phones (crm-item-list.md)
    assert named == [{"id": 1, "name": "Contact 1"}]
    assert star[0]["fm"] == [
        {"id": 1, "valueType": "WORK", "value": "+380501112233", "typeId": "PHONE"}
    ]
    # an omitted select is the controller's default ['*'] (SRC item.php listAction)
    assert omitted[0]["fm"] == star[0]["fm"]


def test_a_deal_has_no_phones_of_its_own_but_resolves_to_its_contact(sandbox, portal, rest):
    seeded = seed(
        sandbox, portal, 2, 2, with_contact=True, phone_from="380671000000",
        fields={"TITLE": "Deal {n}"},
    )  # fmt: skip

    deal = rest("crm.item.get", {"entityTypeId": 2, "id": seeded["ids"][1]}).json()
    item = deal["result"]["item"]
    contact = rest("crm.item.get", {"entityTypeId": 3, "id": item["contactId"]}).json()

    assert "fm" not in item
    assert item["title"] == "Deal 2"
    assert item["contactIds"] == [seeded["contact_ids"][1]] == [item["contactId"]]
    assert [p["value"] for p in contact["result"]["item"]["fm"]] == ["+380671000001"]


@pytest.fixture
def leads(rest):
    """Four leads to filter: titles, amounts, stages and sources differ."""
    return [
        _add(rest, 1, title="Alpha moloko", opportunity=100, sourceId="WEB"),
        _add(rest, 1, title="Beta", opportunity=5000, sourceId="CALL", stageId="IN_PROCESS"),
        _add(rest, 1, title="Gamma molot", opportunity=12000, sourceId="WEB"),
        _add(rest, 1, title="Delta", opportunity=20000, sourceId="ADVERTISING"),
    ]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"sourceId": "WEB"}, [1, 3]),
        ({"=sourceId": "WEB"}, [1, 3]),
        ({"!sourceId": "WEB"}, [2, 4]),
        ({"!=sourceId": "WEB"}, [2, 4]),
        ({">opportunity": 5000}, [3, 4]),
        ({">=opportunity": 5000}, [2, 3, 4]),
        ({"<opportunity": 5000}, [1]),
        ({"<=opportunity": 5000}, [1, 2]),
        ({">=opportunity": 5000, "<=opportunity": 12000}, [2, 3]),
        ({"@sourceId": ["CALL", "ADVERTISING"]}, [2, 4]),
        ({"!@id": [1, 2]}, [3, 4]),
        ({"%title": "mol"}, [1, 3]),
        ({"=%title": "%molot"}, [3]),
        ({"%=title": "alpha%"}, [1]),
        ({"!%title": "mol"}, [2, 4]),
        ({"!=%title": "%mol%"}, [2, 4]),
        ({"stageId": "IN_PROCESS"}, [2]),
        ({"0": {"logic": "OR", "0": {"sourceId": "CALL"}, "1": {">opportunity": 15000}}}, [2, 4]),
        ({"0": {"logic": "OR", "0": {"id": 1}, "1": {"id": 4}}, "sourceId": "WEB"}, [1]),
    ],
)
def test_filter_prefixes(leads, rest, flt, expected):
    found = items(rest, entityTypeId=1, select=["id"], filter=flt)

    assert [item["id"] for item in found] == expected


def test_form_encoded_filter_and_select_work_like_json(leads, portal, http):
    answer = http.post(
        f"{portal['client_endpoint']}crm.item.list",
        data={
            "auth": portal["access_token"],
            "entityTypeId": "1",
            "select[0]": "id",
            "filter[@id][0]": "2",
            "filter[@id][1]": "3",
            "order[id]": "DESC",
        },
    )

    assert answer.json()["result"]["items"] == [{"id": 3}, {"id": 2}]


def test_order_by_several_fields(leads, rest):
    found = items(rest, entityTypeId=1, select=["id"], order={"sourceId": "DESC", "id": "DESC"})

    assert [item["id"] for item in found] == [3, 1, 2, 4]


def test_bad_filter_and_order_are_invalid_arg_value(leads, rest):
    unknown = rest("crm.item.list", {"entityTypeId": 1, "filter": {"noSuchField": 1}})
    not_array = rest("crm.item.list", {"entityTypeId": 1, "filter": {"@id": 1}})
    bad_field = rest("crm.item.list", {"entityTypeId": 1, "order": {"nope": "ASC"}})
    bad_direction = rest("crm.item.list", {"entityTypeId": 1, "order": {"id": "UP"}})

    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "INVALID_ARG_VALUE",
        "error_description": "Invalid filter: field 'NO_SUCH_FIELD' is not allowed in filter",
    }
    assert not_array.json()["error_description"] == "Invalid filter: field 'id' has invalid value"
    assert bad_field.json()["error_description"] == (
        "Invalid order: field 'NOPE' is not allowed in order"
    )
    assert bad_direction.json()["error_description"] == (
        "Invalid order: allowed sort directions are ASC, DESC. But got 'UP' for field 'id'"
    )


def test_controller_errors_for_types_and_parameters(rest):
    no_type = rest("crm.item.list", {})
    bad_type = rest("crm.item.list", {"entityTypeId": "lead"})
    unknown_type = rest("crm.item.get", {"entityTypeId": 1040, "id": 1})
    no_id = rest("crm.item.get", {"entityTypeId": 1})
    missing = rest("crm.item.get", {"entityTypeId": 1, "id": 42})

    assert no_type.status_code == 400
    assert no_type.json() == {
        "error": 100,
        "error_description": "Could not find value for parameter {entityTypeId}",
    }
    assert bad_type.json()["error_description"] == (
        "Invalid value lead to match with parameter {entityTypeId}. Should be value of type int."
    )
    assert unknown_type.json()["error"] == "NOT_FOUND"
    assert no_id.json()["error_description"] == "Could not find value for parameter {id}"
    assert missing.json() == {"error": "NOT_FOUND", "error_description": "Element not found"}


def test_add_update_delete_round_trip(rest):
    contact = _add(rest, 3, name="Ivan", fm=[{"typeId": "PHONE", "value": "+380501234567"}])
    updated = rest(
        "crm.item.update",
        {"entityTypeId": 3, "id": contact, "fields": {"lastName": "Petrenko"}},
    ).json()["result"]["item"]
    legacy = rest("crm.contact.get", {"id": contact}).json()["result"]
    deleted = rest("crm.item.delete", {"entityTypeId": 3, "id": contact})
    after = rest("crm.item.get", {"entityTypeId": 3, "id": contact})

    assert (updated["name"], updated["lastName"]) == ("Ivan", "Petrenko")
    assert updated["fm"][0]["value"] == "+380501234567"
    # crm.contact.* and crm.item.* read the same record
    assert legacy["LAST_NAME"] == "Petrenko"
    assert legacy["PHONE"][0]["VALUE"] == "+380501234567"
    assert deleted.json()["result"] == []
    assert after.json()["error"] == "NOT_FOUND"
    assert items(rest, entityTypeId=3) == []


def test_lead_stage_is_the_legacy_status_id(rest):
    lead = rest("crm.lead.add", {"fields": {"TITLE": "Old API", "STATUS_ID": "JUNK"}}).json()

    item = rest("crm.item.get", {"entityTypeId": 1, "id": lead["result"]}).json()["result"]

    assert item["item"]["stageId"] == "JUNK"
    assert [i["id"] for i in items(rest, entityTypeId=1, filter={"stageId": "JUNK"})] == [1]


def test_companies_and_the_smart_process_1032(sandbox, portal, rest):
    company = _add(rest, 4, title="Acme", fm=[{"typeId": "PHONE", "value": "+380442000000"}])
    seeded = seed(sandbox, portal, 1032, 3, with_contact=True, phone_from="380931000000")

    smart = items(rest, entityTypeId=1032, filter={">=id": 2})
    acme = items(rest, entityTypeId=4)[0]

    assert [s["id"] for s in smart] == [2, 3]
    assert [s["contactId"] for s in smart] == seeded["contact_ids"][1:]
    assert {s["entityTypeId"] for s in smart} == {1032}
    assert all("fm" not in s for s in smart)
    assert (acme["id"], acme["fm"][0]["value"]) == (company, "+380442000000")


def test_deals_filter_by_contact(sandbox, portal, rest):
    seeded = seed(sandbox, portal, 2, 3, with_contact=True, phone_from="380501000000")

    by_contact = items(rest, entityTypeId=2, filter={"contactId": seeded["contact_ids"][2]})
    by_ids = items(rest, entityTypeId=2, filter={"@contactIds": seeded["contact_ids"][:2]})

    assert [d["id"] for d in by_contact] == [seeded["ids"][2]]
    assert [d["id"] for d in by_ids] == seeded["ids"][:2]


def test_ten_thousand_contacts_seed_fast_and_page_through_batch(sandbox, portal, http):
    started = time.monotonic()
    seeded = seed(sandbox, portal, 3, 10_000, phone_from="380500000000")
    seeding = time.monotonic() - started

    seen: list[int] = []
    for first in range(0, 10_000, 50 * 50):
        cmd = {f"p{s}": f"crm.item.list?entityTypeId=3&select[]=id&start={s}"
               for s in range(first, first + 50 * 50, 50)}  # fmt: skip
        answer = http.post(
            f"{portal['client_endpoint']}batch", json={"auth": portal["access_token"], "cmd": cmd}
        ).json()["result"]
        assert answer["result_error"] == []
        seen += [item["id"] for page in answer["result"].values() for item in page["items"]]
        assert set(answer["result_total"].values()) == {10_000}

    assert seeded["count"] == 10_000
    assert seeding < 5, f"seeding 10,000 contacts took {seeding:.2f} s"
    assert sorted(seen) == seeded["ids"] == list(range(1, 10_001))


def test_seed_refuses_bad_input_and_stores_nothing(sandbox, portal, rest):
    too_many = control(sandbox, portal, "crm-seed", entity_type_id=3, count=50_001)
    bad_type = control(sandbox, portal, "crm-seed", entity_type_id=7, count=1)
    bad_phone = control(sandbox, portal, "crm-seed", count=1, phone_from="abc")

    assert [r.status_code for r in (too_many, bad_type, bad_phone)] == [400, 400, 400]
    assert items(rest, entityTypeId=3) == []


def test_crm_item_control_action_adds_updates_and_deletes(sandbox, portal, rest):
    added = control(sandbox, portal, "crm-item", entity_type_id=3, fields={"name": "Olena"},
                    phones=["+380501110000", "+380671110000"]).json()["item"]  # fmt: skip
    control(sandbox, portal, "crm-item", op="update", entity_type_id=3, id=added["id"],
            fields={"lastName": "K"})  # fmt: skip
    got = rest("crm.item.get", {"entityTypeId": 3, "id": added["id"]}).json()["result"]["item"]
    gone = control(sandbox, portal, "crm-item", op="delete", entity_type_id=3, id=added["id"])
    missing = control(sandbox, portal, "crm-item", op="delete", entity_type_id=3, id=added["id"])

    assert [p["value"] for p in got["fm"]] == ["+380501110000", "+380671110000"]
    assert got["lastName"] == "K"
    assert gone.json() == {"deleted": added["id"]}
    assert missing.status_code == 404


def test_new_methods_are_counted_by_the_leaky_bucket(sandbox, portal, rest):
    control(sandbox, portal, "settings", burst=4, drain=0.01)

    answers = [
        rest("crm.item.list", {"entityTypeId": 3}),
        rest("crm.calllist.statuslist"),
        rest("bizproc.robot.list"),
        rest("crm.activity.todo.add", {}),
        rest("crm.calllist.list"),
    ]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[3].status_code == 400  # it ran: the bucket took it
    assert answers[4].status_code == 503
    assert answers[4].json()["error"] == "QUERY_LIMIT_EXCEEDED"


def test_a_fault_on_crm_item_list_leaves_other_methods_working(sandbox, http, rest):
    http.post(f"{sandbox.bitrix_url}/_sandbox/faults",
              json={"method": "crm.item.list", "kind": "503", "rate": 1})  # fmt: skip

    listed = rest("crm.item.list", {"entityTypeId": 3})
    statuses = rest("crm.calllist.statuslist")

    assert (listed.status_code, listed.json()["error"]) == (503, "QUERY_LIMIT_EXCEEDED")
    assert statuses.status_code == 200
