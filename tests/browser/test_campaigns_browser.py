"""The campaign pages in headless Chromium inside the sandbox portal, app as real processes
(gunicorn + worker + beat): a manager opens a campaign, filters its numbers and starts it."""

from __future__ import annotations

import pytest

from integration.campaigns import services
from integration.campaigns.models import Campaign
from integration.campaigns.services import Entry
from tests.browser.test_pages_browser import install
from tests.support import browser as shared
from tests.support.waiting import wait_until

sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_manager_opens_a_campaign_filters_its_numbers_and_starts_it(sandbox, stack, browser):
    # given: a draft campaign with two good numbers and one that cannot be dialled
    portal = install(sandbox)
    campaign = services.campaign_create(portal=portal, name="Spring leads", agent_user_ids=[1])
    services.items_add(
        campaign=campaign,
        entries=[
            Entry(raw_phone="+380501110001", entity_type="LEAD", entity_id=1),
            Entry(raw_phone="+380501110002", entity_type="LEAD", entity_id=2),
            Entry(raw_phone="12345", entity_type="LEAD", entity_id=3),
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # when: Anna (admin) opens the Campaigns tab and the campaign
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1")
    app = page.frame_locator("iframe")
    app.locator("#tab-campaigns").click()
    app.locator("#campaigns-table").wait_for()
    assert "1 of 3 done" in app.locator("#campaigns-table").inner_text()
    shot(page, "campaigns-list")
    app.locator(".open-campaign").first.click()
    app.locator("#campaign-name").wait_for()

    # then: the skipped number shows why; the filter narrows the list to it
    app.locator("#item-filter select").select_option("skipped")
    app.locator("#item-filter button").click()
    app.locator("#items tbody tr").first.wait_for()
    wait_until(
        lambda: app.locator("#items tbody tr").count() == 1,
        timeout=20,
        message="the filtered item list",
    )
    assert "has 5" in app.locator("#items").inner_text()

    # when: she starts it
    app.locator("[data-action=start]").click()
    app.locator("[data-action=pause]").wait_for()
    shot(page, "campaign-detail")

    # then: it runs (no agent has a Unitalk line, so it waits: nothing is dialled)
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING
    assert "running" in app.locator("#campaign-state").inner_text()
