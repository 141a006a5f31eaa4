"""The routing page in headless Chromium inside the sandbox portal (app as real processes):
the admin reorders the chain, is refused with a clear error when every step is off, saves a
valid chain; the colleague a call was handed to sees its path and dials it with one click; the
admin gives a user their own chain, sees it after a reload, is refused an empty one next to its
field, and clears it."""

from __future__ import annotations

import pytest

from integration.agents.models import AgentState
from integration.calls.models import CallSync
from integration.models import Job
from integration.routing import chain, services
from integration.routing.models import Reroute, RoutingOverride, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping
from tests.browser.test_pages_browser import install
from tests.support import browser as shared
from tests.support.waiting import wait_until

sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def handed_to_oleg(portal) -> Reroute:
    sync = CallSync.objects.create(
        portal=portal, origin=CallSync.Origin.CLICK_TO_CALL, user_id=1, phone_number="+380501234571"
    )
    return Reroute.objects.create(
        portal=portal, sync=sync, trigger="line_unreachable", state=Reroute.State.ASKED,
        from_user_id=1, phone_number="+380501234571", step=Step.DEPARTMENT, to_user_id=2,
        to_name="Oleg Operator", to_line="102",
        path=[{"step": Step.OWN_LINE, "why": chain.WHY_OWN_FAILED, "outcome": "skipped",
               "trigger": "line_unreachable"},
              {"step": Step.DEPARTMENT, "why": chain.WHY_CHOSEN, "outcome": "chosen", "user": 2,
               "name": "Oleg Operator", "line": "102"}],
    )  # fmt: skip


def test_admin_edits_the_chain_and_the_colleague_dials_a_handed_call(sandbox, stack, browser):
    portal = install(sandbox)
    for uid, line, name in ((1, "101", "Anna Admin"), (2, "102", "Oleg Operator")):
        OperatorMapping.objects.create(portal=portal, bitrix_user_id=uid, line=line)
        AgentState.objects.create(portal=portal, bitrix_user_id=uid, line=line, name=name)
    reroute = handed_to_oleg(portal)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.on("console", lambda m: print("console:", m.type, m.text))

    # when: Anna (admin) opens Routing
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1")
    app = page.frame_locator("iframe")
    app.locator("#tab-routing").click()
    app.locator("#chain-steps").wait_for()
    # then: the rerouted call shows its path, the chain its steps in order
    path = app.locator(f"#reroutes-table tr[data-reroute='{reroute.pk}'] .path span")
    assert path.inner_text() == "own line failed (the line did not ring) → Oleg Operator"
    steps = app.locator("#chain-steps li")
    assert steps.count() == 6

    # when: she turns every step off and saves
    for step in ("own_line", "backup_line", "responsible", "department", "duty_line"):
        app.locator(f"#chain-steps li[data-step='{step}'] [data-on]").uncheck()
    app.locator("#chain-save").click()
    # then: a clear error, nothing stored
    error = app.locator("[data-error=steps]")
    error.filter(has_text="Turn at least one step on").wait_for()
    assert not RoutingPolicy.objects.filter(portal=portal, steps__0__on=False).exists()
    shot(page, "routing-chain-error")

    # when: she turns the department back on, moves it up once, chooses dial mode and saves
    app.locator("#chain-steps li[data-step='department'] [data-on]").check()
    app.locator("#chain-steps li[data-step='department'] [data-move='-1']").click()
    app.locator("input[name=mode][value=dial]").check()
    # and keeps missed calls' callbacks out of the autodialer (on by default)
    dialer = app.locator("input[name=callbacks_in_dialer]")
    assert dialer.is_checked()
    dialer.uncheck()
    app.locator("#chain-save").click()
    app.locator("#chain-msg").filter(has_text="Saved.").wait_for()
    policy = RoutingPolicy.objects.get(portal=portal)
    assert [s["step"] for s in policy.steps][2] == "department"
    assert policy.mode == "dial"
    assert policy.callbacks_in_dialer is False
    shot(page, "routing-chain-saved")

    # when: Oleg opens Routing, the call handed to him has a one-click dial
    oleg = browser.new_page(viewport={"width": 1280, "height": 700})
    oleg.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=2")
    mine = oleg.frame_locator("iframe")
    mine.locator("#tab-routing").click()
    mine.locator(f"#mine-table [data-dial='{reroute.pk}']").click()
    mine.locator("#dial-msg").filter(has_text="Calling").wait_for()
    wait_until(
        lambda: Job.objects.filter(
            kind=services.KIND_DIAL, payload__reroute_id=reroute.pk
        ).exists(),
        timeout=20,
        message="the dial job",
    )
    shot(oleg, "routing-handed-to-me")


def test_admin_gives_a_user_their_own_chain_and_is_refused_an_empty_one(sandbox, stack, browser):
    portal = install(sandbox)
    for uid, line, name in ((1, "101", "Anna Admin"), (2, "102", "Oleg Operator")):
        OperatorMapping.objects.create(portal=portal, bitrix_user_id=uid, line=line)
        AgentState.objects.create(portal=portal, bitrix_user_id=uid, line=line, name=name)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.on("console", lambda m: print("console:", m.type, m.text))
    url = f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1"

    # when: Anna opens Routing and gives Oleg his own steps: the department first, own line off
    page.goto(url)
    app = page.frame_locator("iframe")
    app.locator("#tab-routing").click()
    oleg = app.locator("#user-chains tr[data-user='2']")
    oleg.locator("[data-badge=portal]").wait_for()
    oleg.locator("[data-chain]").select_option("own")
    for _ in range(3):
        oleg.locator("li[data-step='department'] [data-move='-1']").click()
    oleg.locator("li[data-step='own_line'] [data-on]").uncheck()
    oleg.locator("[data-backup]").select_option("101")
    oleg.locator("[data-save-override]").click()
    oleg.locator("[data-msg]").filter(has_text="Saved.").wait_for()
    # then: stored as his own chain, and the row says so
    stored = RoutingOverride.objects.get(portal=portal, bitrix_user_id=2)
    assert stored.steps is not None
    assert [s["step"] for s in stored.steps] == [
        "department", "own_line", "backup_line", "responsible", "duty_line", "callback"
    ]  # fmt: skip
    assert stored.steps[1] == {"step": "own_line", "on": False}
    assert stored.backup_line == "101"
    assert oleg.locator("[data-badge=own]").is_visible()

    # when: she reloads the page
    page.goto(url)
    app = page.frame_locator("iframe")
    app.locator("#tab-routing").click()
    oleg = app.locator("#user-chains tr[data-user='2']")
    oleg.locator("[data-badge=own]").wait_for()
    # then: his own chain is shown as stored, Anna's row as the portal's
    assert oleg.locator("[data-chain]").input_value() == "own"
    order = oleg.locator("[data-steps] li").evaluate_all(
        "els => els.map(e => e.getAttribute('data-step'))"
    )
    assert order[:2] == ["department", "own_line"]
    assert not oleg.locator("li[data-step='own_line'] [data-on]").is_checked()
    assert oleg.locator("[data-backup]").input_value() == "101"
    anna = app.locator("#user-chains tr[data-user='1']")
    assert anna.locator("[data-badge=portal]").is_visible()
    assert anna.locator("[data-steps]").is_hidden()

    # when: she gives Anna her own chain with every step off
    anna.locator("[data-chain]").select_option("own")
    for step in ("own_line", "backup_line", "responsible", "department", "duty_line"):
        anna.locator(f"li[data-step='{step}'] [data-on]").uncheck()
    anna.locator("[data-save-override]").click()
    # then: the error is next to Anna's steps, nothing is stored for her
    anna.locator("[data-error=steps]").filter(has_text="Turn at least one step on").wait_for()
    assert (
        anna.locator("[data-msg]").inner_text()
        == "Nothing was saved: correct the fields marked in red."
    )
    assert not RoutingOverride.objects.filter(portal=portal, bitrix_user_id=1).exists()
    shot(page, "routing-user-chain")

    # when: she clears Oleg's override
    oleg.locator("[data-clear-override]").click()
    oleg.locator("[data-badge=portal]").wait_for()
    # then: he follows the portal's chain again
    assert not RoutingOverride.objects.filter(portal=portal, bitrix_user_id=2).exists()
