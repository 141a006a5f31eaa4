"""Agent status pages in headless Chromium inside the sandbox portal: presence and the agent's
own toggle on the overview, the managers' panel saying why, the toggle in the call card tab."""

from __future__ import annotations

import pytest

from integration.agents import poll
from integration.agents.models import AgentState, Reason, State, Toggle
from integration.unitalk.models import OperatorMapping
from tests.browser.test_pages_browser import call_card_form, control, install
from tests.support import browser as shared
from tests.support.waiting import wait_until

sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def state_of(user_id: int) -> tuple[str, str] | None:
    row = AgentState.objects.filter(bitrix_user_id=user_id).first()
    return (row.state, row.reason) if row else None


def test_agent_toggles_break_and_the_panel_says_why(sandbox, stack, browser):
    # given: Anna (1) has clocked in, Oleg (2) has not; both have Unitalk lines
    portal = install(sandbox)
    for user_id, line in ((1, "101"), (2, "102")):
        OperatorMapping.objects.create(portal=portal, bitrix_user_id=user_id, line=line)
    control(sandbox, f"portals/{portal.member_id}/workday", {"user_id": 1, "op": "open"})
    poll.poll_now_enqueue(portal=portal)
    # One poll computes the agents one by one: wait for both, not for whichever comes first.
    wait_until(
        lambda: (
            state_of(1) == (State.AVAILABLE, "")
            and state_of(2) == (State.PAUSED, Reason.DAY_CLOSED)
        ),
        timeout=60,
        message="first poll: Anna available, Oleg's day not open",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: print("console:", m.type, m.text))

    # when: Anna opens the app
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1")
    app = page.frame_locator("iframe")
    app.locator("#presence").wait_for()
    # then: the overview shows who can take calls, and her own status
    assert app.locator("#presence-available .num").inner_text() == "1"
    assert app.locator("#presence-paused .num").inner_text() == "1"
    assert app.locator("#my-status").inner_text().startswith("Available since ")
    shot(page, "agents-overview")

    # when: she takes a break, with a reason
    app.locator("#toggle-note").fill("lunch")
    app.locator("#toggle-break").click()
    # then: the page and the app agree at once
    app.locator("#my-status").filter(has_text="Paused: on a break since").wait_for()
    agent = AgentState.objects.get(bitrix_user_id=1)
    assert (agent.toggle, agent.toggle_note, agent.reason) == (Toggle.BREAK, "lunch", Reason.BREAK)

    # when: she opens the agents panel
    app.locator("#tab-agents").click()
    oleg = app.locator("tr[data-user='2']")
    oleg.wait_for()
    # then: it says why Oleg cannot take calls, and since when
    assert oleg.locator("[data-field=state]").inner_text() == "Paused"
    assert oleg.locator("[data-field=reason]").inner_text() == "work day not open in Bitrix24"
    assert oleg.locator("[data-field=since]").inner_text() != ""
    assert app.locator("#push-enabled").is_checked() is False  # off by default
    shot(page, "agents-panel")

    # when: Oleg clocks in, the panel follows without a reload (next poll)
    control(sandbox, f"portals/{portal.member_id}/workday", {"user_id": 2, "op": "open"})
    poll.poll_now_enqueue(portal=portal)
    app.locator("tr[data-user='2'][data-state=available]").wait_for(timeout=30_000)

    # and: in the call card tab Oleg has the same toggle
    tokens = control(sandbox, f"portals/{portal.member_id}/tokens", {"user_id": "2"})
    card = browser.new_page(viewport={"width": 560, "height": 420})
    card.set_content(call_card_form(stack.base_url, portal, tokens["access_token"]))
    card.locator("#agent-me").wait_for()
    assert card.locator("#my-status").inner_text().startswith("Available")
    card.locator("#toggle-offline").click()
    card.locator("#my-status").filter(has_text="Paused: set offline").wait_for()
    assert state_of(2) == (State.PAUSED, Reason.MANUAL)
    shot(card, "agents-call-card")
