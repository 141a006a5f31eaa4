"""The portal's Agents page in headless Chromium (Debian's, tests/support/browser.py): clock a
user in, pause, resume, clock out; take them offline, deactivate them, switch time tracking off,
make them a department head; move the portal clock past midnight so an open day expires; switch
the time-tracking module off. Each click must show up in what REST answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.bitrix.crmkit import control
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, shot

pytestmark = pytest.mark.e2e

SLOW_MS = 20_000


@pytest.fixture
def page(sandbox) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            browser_page = chromium.new_page(viewport={"width": 1500, "height": 900})
            browser_page.on("console", lambda m: print("console:", m.type, m.text))
            yield browser_page
        finally:
            chromium.close()


def _click(page: Any, user: str, cls: str) -> None:
    with page.expect_navigation():
        page.locator(f"tr[data-user='{user}'] button.{cls}").click()
    page.locator("#agent-table").wait_for(timeout=SLOW_MS)


def _cell(page: Any, user: str, selector: str) -> str:
    return str(page.locator(f"tr[data-user='{user}'] {selector}").inner_text()).strip()


def _status(rest, user_id: int) -> str:
    return str(rest("timeman.status", {"USER_ID": user_id}).json()["result"]["STATUS"])


def test_agents_page_drives_the_work_day_presence_and_heads(sandbox, portal, rest, page):
    control(sandbox, portal, "clock", now="2026-03-02T09:00:00+02:00")
    control(sandbox, portal, "department", id=2, name="Sales")
    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/")
    with page.expect_navigation():
        page.locator("header a", has_text="Agents").click()
    page.locator("#agent-table").wait_for(timeout=SLOW_MS)
    assert _cell(page, "2", ".day") == "CLOSED"

    # when: Oleg clocks in, pauses, resumes — each step is what timeman.status answers
    _click(page, "2", "open")
    assert (_cell(page, "2", ".day"), _status(rest, 2)) == ("OPENED", "OPENED")
    assert _cell(page, "2", ".since").startswith("2026-03-02T09:00:")
    _click(page, "2", "pause")
    assert (_cell(page, "2", ".day"), _status(rest, 2)) == ("PAUSED", "PAUSED")
    _click(page, "2", "reopen")
    assert _status(rest, 2) == "OPENED"

    # when: Anna clocks in and the portal clock moves to the next day
    _click(page, "1", "open")
    with page.expect_navigation():
        page.locator("button.clock-day").click()
    assert _cell(page, "1", ".day") == "EXPIRED"
    assert _status(rest, 1) == "EXPIRED"
    assert page.locator("#portal-clock").inner_text().startswith("2026-03-03T09:00")
    _click(page, "1", "close")
    assert _status(rest, 1) == "CLOSED"

    # when: Oleg goes offline, is made head of Sales, gets time tracking off
    _click(page, "2", "online")
    page.locator("#head-of-2").select_option("2")
    _click(page, "2", "head")
    _click(page, "2", "tracking")
    oleg = rest("user.get", {"ID": 2}).json()["result"][0]
    sales = rest("department.get", {"ID": 2}).json()["result"][0]
    assert oleg["IS_ONLINE"] == "N"
    assert sales["UF_HEAD"] == "2"
    assert _cell(page, "2", ".is-online") == "N"
    assert _cell(page, "2", ".search") == "UNAVAILABLE"
    assert rest("timeman.settings", {"USER_ID": 2}).json()["result"]["UF_TIMEMAN"] is False
    shot(page, "sandbox-portal-agents")

    # when: Oleg is deactivated, and the module is uninstalled
    _click(page, "2", "active")
    assert rest("user.get", {"ID": 2}).json()["result"][0]["ACTIVE"] is False
    assert page.locator("tr[data-user='2'].inactive").count() == 1
    with page.expect_navigation():
        page.locator("button.module").click()
    assert page.locator("#timeman-module").inner_text() == "not installed"
    assert rest("timeman.status", {"USER_ID": 1}).status_code == 404
    assert _cell(page, "1", ".search") == "NOT_INSTALLED"


def test_agents_page_switches_unitalks_operator_status_api(sandbox, portal, page, http):
    def read(path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": "SandboxKey01"}
        return http.post(f"{sandbox.unitalk_url}/api/{path}", json=body or {}, headers=headers)

    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/agents/")
    page.locator("#operator-table").wait_for(timeout=SLOW_MS)
    assert page.locator("#status-api").inner_text() == "absent"
    assert read("phones/inner").status_code == 404

    # when: the API is switched on and line 102 is paused from the cabinet buttons
    with page.expect_navigation():
        page.locator("button.status-api").click()
    assert page.locator("#status-api").inner_text() == "on"
    with page.expect_navigation():
        page.locator("tr[data-line='102'] button.op-set", has_text="PAUSE").click()
    assert page.locator("tr[data-line='102'] .operator-status").inner_text() == "PAUSE"
    assert read("phones/inner", {"number": "102"}).json()["phones"] == [
        {"number": "102", "status": "PAUSE"}
    ]

    # when: the fault knob is set to 503
    page.locator("#status-api-fault").select_option("503")
    with page.expect_navigation():
        page.locator("button.status-fault").click()
    assert read("phones/inner/setStatus", {"number": "101", "status": "PAUSE"}).status_code == 503
    assert page.locator("#status-api-fault").input_value() == "503"
    shot(page, "sandbox-portal-agents-unitalk")


def test_the_pages_copy_of_unitalks_names_matches_the_simulator():
    from sandbox.bitrix import agentpages
    from sandbox.unitalk import app, lines, operators

    assert agentpages.OPERATOR_STATUSES == operators.STATUSES
    assert agentpages.OPERATOR_DEFAULT == operators.DEFAULT_STATUS
    assert agentpages.OPERATOR_FAULTS == operators.FAULTS
    assert agentpages.LINE_STATES == lines.LINE_STATES
    assert tuple(lines.OPERATOR_LEGS) == agentpages.OPERATOR_OUTCOMES
    assert agentpages.BUSY_MODES == lines.BUSY_MODES
    assert {k: app.DEFAULT_SETTINGS[k] for k in agentpages.DEFAULT_LINES} == (
        agentpages.DEFAULT_LINES
    )
    assert {k: app.DEFAULT_SETTINGS[k] for k in agentpages.DEFAULT_UNITALK} == (
        agentpages.DEFAULT_UNITALK
    )


def test_agents_page_sets_unitalk_line_states_and_knobs(sandbox, portal, page, http):
    def control(path: str, **body: Any) -> Any:
        return http.post(f"{sandbox.unitalk_url}/_sandbox/{path}", json=body).json()

    page.goto(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/agents/")
    page.locator("#line-table").wait_for(timeout=SLOW_MS)

    # when: line 102 is unregistered, and the knobs set to a no-answer operator leg, busy reject
    with page.expect_navigation():
        page.locator("tr[data-line='102'] button.line-set", has_text="unregistered").click()
    page.locator("#operator-outcome").select_option("noanswer")
    page.locator("#busy-mode").select_option("reject")
    page.locator("#answer-lost").check()
    with page.expect_navigation():
        page.locator("button.line-knobs").click()

    # then: Unitalk has them, and the page shows them after the reload
    assert control("lines")["lines"] == {"101": "registered", "102": "unregistered"}
    settings = control("settings", api_key="SandboxKey01")
    assert (settings["operator_outcome"], settings["busy_mode"]) == ("noanswer", "reject")
    assert settings["answer_lost"] == 1
    assert page.locator("tr[data-line='102'] .line-state").inner_text() == "unregistered"
    assert page.locator("#busy-mode").input_value() == "reject"
    assert page.locator("#answer-lost").is_checked()
    shot(page, "sandbox-portal-agents-lines")
