"""Issue 16 in headless Chromium, inside the sandbox portal: calls now on the overview, the call
history (filters, errors, player, CSV), people picked with Bitrix24's dialog and shown by name.
Screenshots at 1280 and 800 px in en, uk and ru (SCREENSHOT_DIR, tests/support/browser.py)."""

from __future__ import annotations

from itertools import count

import pytest

from bitrixapp.models import portal_options
from integration.bitrix import users as bitrix_users
from integration.calls import failed
from integration.calls.models import Call, CallSync, FailedCall
from integration.campaigns import callbacks
from integration.unitalk.models import OperatorMapping
from tests.browser.test_pages_browser import control, install
from tests.pages.test_calls_pages import a_call
from tests.support import browser as shared
from tests.support.waiting import wait_until

sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

_ids = count(1)
LANGS = {"en": "en", "uk": "ua", "ru": "ru"}  # ours -> Bitrix24's LANG
WIDTHS = (1280, 800)
#: Where a queued callback stands, in each language (docs/routing.md "Callbacks in the dialer").
DIALER_QUEUED = {
    "en": "In the autodialer: offered to its owner before any campaign number",
    "uk": "В автодзвінку: власнику пропонується раніше за будь-який номер кампанії",  # noqa: RUF001 (Cyrillic is the point)
    "ru": "В автообзвоне: владельцу предлагается раньше любого номера кампании",  # noqa: RUF001 (Cyrillic is the point)
}


def seed_calls(portal) -> None:
    """Two calls in progress, six finished ones of every outcome, one missed call to call back."""
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=2, line="102")

    def call(minutes_ago: float, **fields) -> Call:
        return a_call(portal, minutes_ago=minutes_ago, **fields)

    call(
        0.2,
        status=Call.Status.RINGING,
        ended=False,
        state="",
        answered_at=None,
        talk_seconds=None,
        client_number="380671234567",
    )
    talking = call(
        1.5,
        status=Call.Status.ANSWERED,
        ended=False,
        state="",
        talk_seconds=None,
        operator_line="102",
        client_number="380931112200",
    )
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=talking,
        user_id=2,
        crm_entity_type="LEAD",
        crm_entity_id=12,
    )
    recorded = call(30, recording_url="https://unitalk.example/rec/30.mp3")
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=recorded,
        user_id=1,
        stage=CallSync.Stage.RECORDED,
        crm_entity_type="CONTACT",
        crm_entity_id=4,
    )
    call(60, state="NOANSWER", answered_at=None, talk_seconds=0, client_number="380671234500")
    call(
        90,
        direction=Call.Direction.OUT,
        state="BUSY",
        answered_at=None,
        talk_seconds=0,
        operator_line="102",
        client_number="380442223344",
    )
    synced = call(60 * 26, operator_line="102", client_number="380501110000")
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=synced,
        user_id=2,
        stage=CallSync.Stage.FAILED,
        last_error="crm.activity.add: ACCESS_DENIED",
    )
    missed = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key="missed:380671234500",
        reason="nobody answered",
        phone_number="380671234500",
        owner_user_id=2,
    )
    # Oleg dials a campaign: the callback is queued in the autodialer for him
    callbacks.callback_item_add(item=missed, phone=missed.phone_number)


def open_app(browser, sandbox, portal, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("console", lambda m: print("console:", m.type, m.text) if m.type == "error" else None)
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1")
    return page, page.frame_locator("iframe").first


def test_calls_pages_in_three_languages_at_two_widths(sandbox, stack, browser):
    # given: the app installed, calls in progress and finished, names loaded from the portal
    portal = install(sandbox)
    seed_calls(portal)
    bitrix_users.users_refresh_enqueue(portal=portal)
    wait_until(lambda: bitrix_users.people_get(portal=portal), timeout=30, message="names")

    for lang, bx_lang in LANGS.items():
        control(sandbox, f"portals/{portal.member_id}/settings", {"lang": bx_lang})
        for width in WIDTHS:
            page, app = open_app(browser, sandbox, portal, width)
            # the overview: calls now, by name, with the CRM record
            app.locator("#live-rows tr[data-state=talking]").wait_for()
            live = app.locator("#live-rows").inner_text()
            assert "Anna Admin" in live
            assert "Oleg Operator" in live
            assert "#12" in live
            shot(page, f"overview-live-{width}-{lang}")
            # the history
            app.locator("#tab-history").click()
            app.locator("#history-rows tr[data-outcome]").first.wait_for()
            assert app.locator("#history-rows tr[data-outcome]").count() == 6
            assert app.locator("#history-rows audio").count() == 1
            shot(page, f"history-{width}-{lang}")
            # the missed calls name who is to call back
            app.locator("#tab-missed").click()
            app.locator("#failed-rows tr[data-id]").first.wait_for()
            assert "Oleg Operator" in app.locator("#failed-rows").inner_text()
            assert app.locator("#failed-rows .dialer").inner_text() == DIALER_QUEUED[lang]
            shot(page, f"missed-named-{width}-{lang}")
            # the settings take people with the picker
            app.locator("#tab-settings").click()
            app.locator("#options-form").wait_for()
            assert app.locator("[data-user-picker]").count() == 3
            shot(page, f"settings-people-{width}-{lang}")
            page.close()


def test_people_are_picked_with_bitrix24s_dialog_and_history_filters_say_what_is_wrong(
    sandbox, stack, browser
):
    portal = install(sandbox)
    seed_calls(portal)
    bitrix_users.users_refresh_enqueue(portal=portal)
    wait_until(lambda: bitrix_users.people_get(portal=portal), timeout=30, message="names")
    page, app = open_app(browser, sandbox, portal, 1280)
    app.locator("#tab-history").click()
    app.locator("#history-rows tr[data-outcome]").first.wait_for()

    # when: Anna picks Oleg in the portal's own people dialog
    app.locator("#pick-user .pick-user").click()
    dialog = page.locator("#bx-user-picker")
    dialog.locator("label", has_text="Oleg Operator").click()
    shot(page, "history-picker-dialog")
    dialog.locator("#bx-user-ok").click()
    # then: his chip is shown and only his calls are listed
    app.locator("#pick-user .chip", has_text="Oleg Operator").wait_for()
    wait_until(
        lambda: app.locator("#history-rows tr[data-outcome]").count() == 3,
        timeout=10,
        message="Oleg's three calls",
    )

    # when: a number that is no number is searched
    app.locator("input[name=number]").fill("call me")
    app.locator("#history-search").click()
    # then: the field says so, nothing is silently ignored
    error = app.locator("[data-error-for=number]")
    error.filter(has_text="Enter digits").wait_for()
    assert app.locator("#history-rows tr[data-outcome]").count() == 0
    shot(page, "history-bad-filter")

    # when: the filter is fixed and the list exported
    app.locator("input[name=number]").fill("")
    app.locator("#history-search").click()
    app.locator("#history-rows tr[data-outcome]").first.wait_for()
    with page.expect_download() as download:
        app.locator("#history-csv").click()
    with open(download.value.path(), encoding="utf-8") as exported:
        lines = exported.read().splitlines()
    assert lines[0].startswith("started_at,direction,outcome")
    assert len(lines) == 1 + 3
    assert all("Oleg Operator" in line for line in lines[1:])

    # when: the default user and notice recipients are chosen in Settings and saved
    app.locator("#tab-settings").click()
    app.locator("#options-form").wait_for()
    app.locator("#pick-default_user_id .pick-user").click()
    page.locator("#bx-user-picker label", has_text="Oleg Operator").click()
    page.locator("#bx-user-ok").click()
    app.locator("#pick-notify_user_ids .pick-user").click()
    page.locator("#bx-user-picker label", has_text="Anna Admin").click()
    page.locator("#bx-user-picker label", has_text="Oleg Operator").click()
    page.locator("#bx-user-ok").click()
    app.locator("#pick-notify_user_ids .chip").nth(1).wait_for()
    app.locator("select[name=missed_owner_rule]").select_option("default")
    app.locator("#save-options").click()
    app.locator("#options-status.ok").wait_for()
    shot(page, "settings-picked")
    # then: the ids are stored, and the page shows the names
    options = portal_options(portal)
    options.refresh_from_db()
    assert (options.default_user_id, sorted(options.notify_user_ids)) == (2, [1, 2])


def test_bulk_retry_shows_done_of_total_as_items_settle(sandbox, stack, browser):
    from tests.browser.test_pages_browser import crm_item_with_dead_job

    # given: three CRM updates that died (their jobs can run again)
    portal = install(sandbox)
    items = [crm_item_with_dead_job(portal) for _ in range(3)]
    page, app = open_app(browser, sandbox, portal, 1280)
    app.locator("#tab-failed").click()
    app.locator(".subtab[data-kind=crm_sync_failed]").click()
    app.locator("#failed-rows tr[data-id]").nth(2).wait_for()
    # when: all are retried at once
    app.locator("#select-all").check()
    app.locator("#bulk-retry").click()
    # then: the page counts them as they settle, up to 3 of 3
    app.locator("#bulk-progress[data-of='3']").wait_for()
    app.locator("#bulk-progress[data-settled='3'][data-of='3']").wait_for(timeout=30_000)
    assert "3 of 3" in app.locator("#bulk-progress").inner_text()
    shot(page, "bulk-retry-progress")
    for item in items:
        item.refresh_from_db()
    assert {i.state for i in items} == {FailedCall.State.RESOLVED}


@pytest.mark.parametrize("lang", ["en", "uk", "ru"])
def test_call_card_shows_the_live_stage_and_the_problem(sandbox, stack, browser, lang):
    # given: a click-to-call being talked, and another one saved but with a CRM problem
    portal = install(sandbox)
    seed_calls(portal)
    talking = Call.objects.get(portal=portal, status=Call.Status.ANSWERED)
    CallSync.objects.filter(call=talking).update(
        bitrix_call_id="externalCall.live.1", stage=CallSync.Stage.REGISTERED
    )
    for width in WIDTHS:
        tokens = control(sandbox, f"portals/{portal.member_id}/tokens", {"user_id": "1"})
        page = browser.new_page(viewport={"width": width, "height": 700})
        page.set_content(
            f"<form id=f method=post action='{stack.base_url}/bitrix/placement/"
            f"?DOMAIN={portal.domain}&PROTOCOL=0&LANG={LANGS[lang]}&APP_SID=x'>"
            f"<input name=AUTH_ID value='{tokens['access_token']}'>"
            f"<input name=member_id value='{portal.member_id}'>"
            "<input name=PLACEMENT value=CALL_CARD>"
            '<input name=PLACEMENT_OPTIONS value=\'{"CALL_ID":"externalCall.live.1"}\'>'
            "</form><script>document.getElementById('f').submit()</script>"
        )
        # then: the steps show where the call stands, and follow it without a reload
        page.locator("ol.steps[data-step=talking]").wait_for()
        assert page.locator("ol.steps li.done").count() == 2
        shot(page, f"call-card-talking-{width}-{lang}")
        CallSync.objects.filter(call=talking).update(
            stage=CallSync.Stage.FAILED, last_error="crm.activity.add: ACCESS_DENIED"
        )
        page.locator("ol.steps[data-step=problem]").wait_for(timeout=10_000)
        assert "ACCESS_DENIED" in page.locator("#live-problem").inner_text()
        shot(page, f"call-card-problem-{width}-{lang}")
        CallSync.objects.filter(call=talking).update(stage=CallSync.Stage.REGISTERED, last_error="")
        page.close()
