"""The portal web UI's autodialer pieces in headless Chromium (Debian's, tests/support/browser.py):
contacts with phones, a call list made from selected contacts, "Call" from the list firing
ONEXTERNALCALLSTART with CALL_LIST_ID, an item's status changed in the UI, and "Run robot" on a
lead posting the robot's handler. Only the sandbox runs; the receiver stands in for the app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.sandbox.bitrix.crmkit import control, portal_state
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, shot
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

SLOW_MS = 20_000


@pytest.fixture
def page(sandbox) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            browser_page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            browser_page.on("console", lambda m: print("console:", m.type, m.text))
            yield browser_page
        finally:
            chromium.close()


@pytest.fixture
def installed(sandbox, portal, rest, receiver) -> dict[str, Any]:
    """The app's ONEXTERNALCALLSTART handler bound and installFinish done (events flow)."""
    rest("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": f"{receiver.url}/events/"})
    control(sandbox, portal, "install-finish")
    return portal


def _add_contact(page: Any, name: str, phones: str) -> None:
    page.locator("#contact-name").fill(name)
    page.locator("#contact-phones").fill(phones)
    with page.expect_navigation():
        page.locator("#contact-add").click()
    page.locator("#contacts td", has_text=name).wait_for(timeout=SLOW_MS)


def test_call_list_from_selected_contacts_dials_with_its_id(sandbox, installed, receiver, page):
    portal = installed
    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/crm/?user=2")

    # when: two contacts are added with phones, selected, and made into a call list
    _add_contact(page, "Ivan", "+380501112233, +380671112233")
    _add_contact(page, "Olena", "+380931112233")
    page.locator("#contacts .pick").nth(0).check()
    page.locator("#contacts .pick").nth(1).check()
    with page.expect_navigation():
        page.locator("#calllist-create").click()
    panel = page.locator(".calllist[data-list-id='1']")
    panel.wait_for(timeout=SLOW_MS)

    # then: the list holds both contacts, as crm.calllist.items.get sees them
    assert panel.locator("tr").count() == 2
    listed = portal_state(sandbox, portal)["call_lists"]["1"]
    assert [i["ELEMENT_ID"] for i in listed["ITEMS"]] == ["1", "2"]

    # when: Olena's row gets "Call"
    panel.locator("tr[data-entity='2'] button.dial").click()
    page.locator("#crm-status.ok", has_text="from call list #1").wait_for(timeout=SLOW_MS)

    # then: the app receives ONEXTERNALCALLSTART carrying CALL_LIST_ID, the call card shows it
    event = parse_qs(
        wait_until(lambda: receiver.to("/events/"), message="the event")[0].body.decode()
    )
    assert event["data[CALL_LIST_ID]"] == ["1"]
    assert event["data[PHONE_NUMBER]"] == ["+380931112233"]
    assert event["data[USER_ID]"] == ["2"]
    page.locator("#cards .card", has_text="call list #1").wait_for(timeout=SLOW_MS)

    # when: the item's status is set in the UI (the only place it can be set)
    panel.locator("tr[data-entity='1'] select.item-status").select_option("STOP_CALLING")
    page.locator("#crm-status.ok", has_text="STOP_CALLING").wait_for(timeout=SLOW_MS)
    shot(page, "sandbox-portal-crm-call-list")

    # then
    items = portal_state(sandbox, portal)["call_lists"]["1"]["ITEMS"]
    assert [(i["ELEMENT_ID"], i["STATUS"]) for i in items] == [
        ("1", "STOP_CALLING"),
        ("2", "IN_WORK"),
    ]


def test_run_robot_on_a_lead_posts_the_handler_and_shows_the_result(
    sandbox, installed, receiver, rest, page
):
    portal = installed
    rest("bizproc.robot.add", {
        "CODE": "add_to_campaign", "HANDLER": f"{receiver.url}/robot/", "NAME": "Add to campaign",
        "USE_SUBSCRIPTION": "Y",
        "PROPERTIES": {"campaign": {"Name": "Campaign", "Type": "string", "Required": "Y"}},
        "RETURN_PROPERTIES": {"itemId": {"Name": "Item", "Type": "int"}},
    })  # fmt: skip
    lead = control(sandbox, portal, "lead", phone="+380501112233", title="Ivan").json()["ID"]
    rest("crm.activity.todo.add", {"ownerTypeId": 1, "ownerId": lead, "title": "Call Ivan back",
                                   "deadline": "2026-02-03T15:00:00"})  # fmt: skip
    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/lead/{lead}/?user=1")

    # when: the robot is run on the lead with its property filled in
    page.locator(".robot-prop[data-name='campaign']").fill("spring")
    page.locator("#robot-run").click()
    page.locator("#robot-status.ok", has_text="delivered (HTTP 200)").wait_for(timeout=SLOW_MS)

    # then: the handler got the documented form
    [posted] = receiver.to("/robot/")
    form = parse_qs(posted.body.decode())
    assert form["document_id[2]"] == [f"LEAD_{lead}"]
    assert form["properties[campaign]"] == ["spring"]
    assert form["auth[application_token]"] == [portal["application_token"]]

    # when: the app answers with bizproc.event.send and the card is reloaded
    rest("bizproc.event.send", {"EVENT_TOKEN": form["event_token"][0],
                                "RETURN_VALUES": {"itemId": 41}})  # fmt: skip
    page.reload()

    # then: the run shows as completed with what it returned; the to-do is on the card
    page.locator("#robot-runs td", has_text="completed").wait_for(timeout=SLOW_MS)
    assert "41" in page.locator("#robot-runs").inner_text()
    assert "Call Ivan back" in page.locator("#todos").inner_text()
    shot(page, "sandbox-portal-lead-robot")


def test_crm_page_reports_a_refused_call_list(sandbox, portal, page):
    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/crm/")

    page.locator("#calllist-create").click()  # nothing selected

    page.locator("#crm-status.error", has_text="ENTITIES is not found").wait_for(timeout=SLOW_MS)
    assert portal_state(sandbox, portal).get("call_lists", {}) == {}
