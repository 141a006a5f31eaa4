"""Issue 16: people by name and avatar wherever the pages take or show a Bitrix24 user."""

from __future__ import annotations

import json

import pytest

from bitrixapp.models import portal_options
from integration import jobs
from integration.bitrix import users as bitrix_users
from integration.calls.models import FailedCall
from integration.unitalk.models import OperatorMapping
from tests.integration.bitrix.fixtures import REST, ok
from tests.pages.conftest import enter, fake_profile, open_item, token, users

pytestmark = pytest.mark.django_db(transaction=True)


def test_refresh_reads_everyone_with_photos_and_keeps_dismissed_names(portal, rsps):
    rsps.post(
        REST + "user.get",
        json=ok(
            [
                {
                    "ID": "1",
                    "NAME": "Anna",
                    "LAST_NAME": "Admin",
                    "ACTIVE": True,
                    "PERSONAL_PHOTO": "https://cdn.example/anna.png",
                },
                {
                    "ID": "2",
                    "NAME": "Oleg",
                    "ACTIVE": False,
                    "PERSONAL_PHOTO": "javascript:alert(1)",
                },
            ]
        ),
    )
    jobs.job_execute(job_id=bitrix_users.users_refresh_enqueue(portal=portal).pk)

    people = bitrix_users.people_get(portal=portal)
    assert people[1] == {
        "name": "Anna Admin",
        "photo": "https://cdn.example/anna.png",
        "active": True,
    }
    # a dismissed employee keeps a name for old calls, but is no choice for new settings
    assert people[2] == {"name": "Oleg", "photo": "", "active": False}
    assert bitrix_users.users_directory(portal=portal) == {1: "Anna Admin"}
    # the whole list, active or not (docs/bitrix24.md §7.4)
    assert "FILTER" not in json.loads(rsps.calls[-1].request.body or b"{}")


def test_refresh_skips_ids_that_are_not_bounded_ascii_numbers(portal, rsps):
    # a portal's answer is input from outside too (issue 11 item 4): "²".isdigit() is true
    odd = ["²", "9" * 5000, "0", "-3"]
    rows = [{"ID": i, "NAME": f"N{n}", "ACTIVE": True} for n, i in enumerate(odd)]
    rsps.post(REST + "user.get", json=ok([*rows, {"ID": "5", "NAME": "Ira", "ACTIVE": True}]))

    job = bitrix_users.users_refresh_enqueue(portal=portal)
    jobs.job_execute(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == job.State.SUCCEEDED, job.last_error
    assert bitrix_users.users_directory(portal=portal) == {5: "Ira"}


def test_a_user_that_cannot_be_read_is_shown_by_id():
    assert bitrix_users.person_dict({}, 7) == {"id": 7, "name": "#7", "photo": "", "known": False}
    assert bitrix_users.person_dict(None, None)["id"] is None


def test_settings_take_users_with_pickers_and_show_their_names(client, portal, rsps):
    # given: Oleg is the default user, Anna and Oleg get the notices, line 101 is Anna's
    users(portal)
    options = portal_options(portal)
    options.default_user_id, options.notify_user_ids = 2, [1, 2]
    options.save()
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    fake_profile(rsps)
    # when
    html = enter(client, portal, "/bitrix/app/settings/").content.decode()
    # then: pickers with chips by name, no field asking for typed ids
    assert "Default user (ID)" not in html
    assert "comma-separated; empty" not in html
    assert html.count("data-user-picker") == 3
    assert 'name="default_user_id" value="2"' in html
    assert 'name="notify_user_ids" value="1,2"' in html
    chips = html.split('id="pick-notify_user_ids"')[1].split("</span></span><button")[0]
    assert "Anna Admin" in chips
    rows = html.split('id="mapping-table"')[1].split("</table>")[0]
    assert "Anna Admin" in rows
    assert "(ID 1)" not in rows


def test_settings_save_takes_the_pickers_ids(client, portal):
    users(portal)
    response = client.post(
        "/bitrix/actions/settings/",
        json.dumps(
            {
                "card_mode": "ring",
                "missed_owner_rule": "default",
                "default_user_id": "2",
                "notify_user_ids": "1,2",
            }
        ),
        content_type="application/json",
        **token(portal),
    )
    assert response.status_code == 200, response.content
    options = portal_options(portal)
    assert (options.default_user_id, options.notify_user_ids) == (2, [1, 2])


def test_failed_list_names_the_owner(client, portal):
    users(portal)
    open_item(portal, kind=FailedCall.Kind.MISSED, owner=2, with_job=False)
    open_item(portal, kind=FailedCall.Kind.MISSED, owner=9, with_job=False, number="380509999999")
    data = client.get("/bitrix/actions/failed/", {"kind": "missed"}, **token(portal)).json()
    owners = {i["phone"]: i["owner_person"] for i in data["items"]}
    assert owners["380501112233"]["name"] == "Oleg"
    assert owners["380501112233"]["known"]
    assert owners["380509999999"] == {"id": 9, "name": "#9", "photo": "", "known": False}


def test_failed_list_refuses_a_user_filter_that_is_not_a_picked_user(client, portal):
    response = client.get("/bitrix/actions/failed/", {"user": "Oleg"}, **token(portal))
    assert response.status_code == 400
    assert response.json()["errors"]["user"] == "Choose a user with the picker."
