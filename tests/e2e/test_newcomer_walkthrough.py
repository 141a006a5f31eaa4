"""The README's "Try it: a whole call in the sandbox", clicked through in headless Chromium.

The app runs as real processes (gunicorn + Celery worker + beat, tests/support/stack.py); the
sandbox portal, OAuth server and Unitalk run in this process. Every step is a click or a paste in
the browser, as a newcomer does it: no control-API shortcuts, so a broken button fails here.
Screenshots go to var/screenshots/ unless SCREENSHOT_DIR is set (`make screenshots` style).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from bitrixapp.models import Portal
from integration.calls.models import FailedCall
from tests.support import browser as shared
from tests.support.waiting import wait_until

# Shared fixtures (tests/support/browser.py): the sandbox and the app as processes.
sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

LEAD_PHONE = "+380501112233"
UNKNOWN_CALLER = "380671234567"
SLOW_MS = 60_000  # one worker round trip plus Unitalk's scripted ring; generous for CI


@pytest.fixture
def page(browser) -> Any:
    browser_page = browser.new_page(viewport={"width": 1400, "height": 1000})
    browser_page.on("console", lambda m: print("console:", m.type, m.text))
    return browser_page


def shot(page: Any, name: str) -> None:
    shared.shot(page, f"walkthrough-{name}")


def portal_state(sandbox: Any, member_id: str) -> dict[str, Any]:
    state = requests.get(f"{sandbox.bitrix_url}/_sandbox/state?log=0", timeout=10).json()
    return state["portals"][member_id]


def test_newcomer_makes_a_call_and_sees_a_missed_one(sandbox, stack, page):
    # given: the sandbox portal's start page
    page.goto(f"{sandbox.bitrix_url}/")

    # when: a portal is created; the app installs itself inside it
    page.get_by_role("button", name="Create a portal").click()
    page.wait_for_url("**/portal/*/")
    member_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    app = page.frame_locator("iframe")
    app.locator("#tab-settings").wait_for(timeout=SLOW_MS)
    shot(page, "01-installed")

    # when: in the app's Settings the key shown in the Unitalk panel is saved and tested
    key = page.locator("#ut-key-shown").inner_text()
    app.locator("#tab-settings").click()
    app.locator("#api_key").fill(key)
    app.locator("#save-key").click()
    app.locator("#key-masked").filter(has_text=key[-4:]).wait_for()
    app.locator("#test-connection").click()
    app.locator("#test-result.ok").wait_for(timeout=SLOW_MS)
    webhook_url = app.locator("#webhook-url").input_value()
    shot(page, "02-settings-key")

    # when: the webhook URL is pasted into "Unitalk", and users are matched to lines
    page.locator("#ut-webhook").fill(webhook_url)
    page.locator("#ut-webhook-save").click()
    page.locator("#ut-webhook-status.ok").wait_for()
    app.locator("#operators-sync").click()
    app.locator("#operators-status").filter(has_text="finished").wait_for(timeout=SLOW_MS)
    # The mapping table is rendered with the page: open Settings again to see the result.
    page.reload()
    app = page.frame_locator("iframe")
    app.locator("#tab-settings").click()
    app.locator("#mapping-table tbody tr").filter(has_text="Anna").filter(has_text="101").wait_for()
    shot(page, "03-webhook-and-operators")

    # when: a lead with a phone number is added, opened, and its number clicked
    page.locator("#lead-phone").fill(LEAD_PHONE)
    page.get_by_role("button", name="Add lead").click()
    page.locator("aside a[href*='/lead/']").first.click()
    page.wait_for_url("**/lead/*/")
    page.locator(".phone").filter(has_text=LEAD_PHONE).click()
    page.locator("#dial-result").filter(has_text="Calling").wait_for()

    # then: Unitalk dials, the app finishes the call in Bitrix24 (200) and attaches its record
    page.locator("#telephony .card[data-status='200'] a.record").wait_for(timeout=SLOW_MS)
    page.reload()  # the lead's CRM tab lists the call with its recording
    page.frame_locator("iframe").locator("#crm-calls audio").wait_for(timeout=SLOW_MS)
    shot(page, "04-call-finished")
    state = portal_state(sandbox, member_id)
    finished = [c for c in state["finished"].values() if c["PHONE_NUMBER"] == LEAD_PHONE]
    assert [c["CALL_FAILED_CODE"] for c in finished] == ["200"]
    assert [r["CALL_ID"] for r in state["records"]] == [finished[0]["CALL_ID"]]

    # when: an unknown number rings line 101 and nobody answers
    page.locator("#ut-from").fill(UNKNOWN_CALLER)
    page.locator("#ut-line").select_option("101")
    page.locator("#ut-outcome").select_option("noanswer")
    page.locator("#ut-ring").click()
    page.locator("#ut-ring-status.ok").wait_for()

    # then: the portal's notifications panel tells Anna, and the app lists the missed call
    page.locator("#notes .card").filter(has_text=UNKNOWN_CALLER).wait_for(timeout=SLOW_MS)
    shot(page, "05-missed-notification")
    page.get_by_role("link", name="Application").click()
    app = page.frame_locator("iframe")
    app.locator("#tab-missed").click()
    app.locator(f"tr[data-phone*='{UNKNOWN_CALLER}'][data-state=open]").wait_for(timeout=SLOW_MS)
    shot(page, "06-failed-calls-missed")
    portal = Portal.objects.get(member_id=member_id)
    missed = FailedCall.objects.get(portal=portal, kind=FailedCall.Kind.MISSED)
    assert (missed.state, missed.owner_user_id) == (FailedCall.State.OPEN, 1)
    wait_until(
        lambda: any(
            c["PHONE_NUMBER"] == UNKNOWN_CALLER and c["CALL_FAILED_CODE"] == "304"
            for c in portal_state(sandbox, member_id)["finished"].values()
        ),
        timeout=30,
        message="the missed call to be logged in Bitrix24 telephony as 304",
    )
