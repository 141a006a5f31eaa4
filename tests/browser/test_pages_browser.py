"""The app pages in headless Chromium, inside the sandbox portal, with the app as real processes.

gunicorn + a Celery worker + beat (tests/support/stack.py) on the test database; the sandbox
portal, OAuth server and Unitalk run in this process. The browser opens the sandbox portal page,
which frames the app the way Bitrix24 does (form POST into an iframe, BX24.js over postMessage).
Screenshots of every page: see tests/support/browser.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from django.utils import timezone

from bitrixapp.models import Portal, portal_options
from integration.bitrix import users as bitrix_users
from integration.calls import failed
from integration.calls.models import Call, CallSync, FailedCall
from integration.models import Job
from integration.unitalk.models import UnitalkConnection
from tests.support import browser as shared
from tests.support.waiting import wait_until

# Shared fixtures (tests/support/browser.py): the sandbox and the app as processes.
sandbox = shared.sandbox
stack = shared.stack
browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def control(sandbox, path: str, payload: dict[str, Any] | None = None) -> Any:
    response = requests.post(
        f"{sandbox.bitrix_url}/_sandbox/{path}", json=payload or {}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def install(sandbox) -> Portal:
    creds = control(sandbox, "portals")
    answer = control(sandbox, f"portals/{creds['member_id']}/install")
    assert answer["onappinstall"]["status"] == 200, answer["onappinstall"]
    portal = wait_until(
        lambda: Portal.objects.filter(
            member_id=creds["member_id"], status=Portal.Status.ACTIVE
        ).first(),
        timeout=60,
        message="the worker to finish the install job",
    )
    control(sandbox, f"portals/{portal.member_id}/install-finish")
    return portal


def crm_item_with_dead_job(portal: Portal) -> FailedCall:
    """A CRM update that died: its job is a real kind the worker can re-run successfully."""
    # Created dead, not enqueued then marked dead: a live worker could run it in between.
    job = Job.objects.create(
        kind=bitrix_users.KIND_USERS_REFRESH,
        idempotency_key=f"browser-test:{uuid.uuid4().hex}",
        portal=portal,
        subject="call:demo",
        state=Job.State.DEAD,
        attempts=6,
        finished_at=timezone.now(),
        last_error="crm.activity.add: ACCESS_DENIED (the responsible user was dismissed)",
    )
    return failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.CRM_SYNC_FAILED,
        dedupe_key=f"job:{job.pk}",
        reason=job.last_error,
        phone_number="380501112233",
        owner_user_id=2,
        job=job,
    )


def test_admin_saves_settings_sees_a_failed_call_and_retries_it(sandbox, stack, browser):
    # given: the app installed on a sandbox portal, one missed call and one dead CRM update
    portal = install(sandbox)
    failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key="missed:380671234567",
        reason="no operator answered within 30 s",
        phone_number="380671234567",
        owner_user_id=1,
    )
    item = crm_item_with_dead_job(portal)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: print("console:", m.type, m.text))

    # when: Anna (admin) opens the app in the portal
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/?user=1")
    app = page.frame_locator("iframe")
    app.locator("#count-crm_sync_failed .num").wait_for()
    # then: the overview counts the open items
    assert app.locator("#count-crm_sync_failed .num").inner_text() == "1"
    assert app.locator("#count-missed .num").inner_text() == "1"
    shot(page, "overview")

    # when: she saves the Unitalk key and the options, and tests the connection
    app.locator("#tab-settings").click()
    app.locator("#options-form").wait_for()
    wait_until(
        lambda: bitrix_users.users_directory(portal=portal) is not None,
        timeout=30,
        message="the worker to load the portal's users",
    )
    app.locator("#api_key").fill("SandboxKey01")
    app.locator("#save-key").click()
    app.locator("#key-masked").filter(has_text="****ey01").wait_for()
    app.locator("input[name=stakeholder_emails]").fill("not-an-address")
    app.locator("#save-options").click()
    app.locator("[data-error-for=stakeholder_emails]").filter(has_text="not-an-address").wait_for()
    assert portal_options(portal).stakeholder_emails == ""
    app.locator("input[name=stakeholder_emails]").fill("boss@example.com")
    app.locator("select[name=card_mode]").select_option("answer")
    # the default user is chosen in the portal's own people dialog (BX24.selectUser)
    app.locator("#pick-default_user_id .pick-user").click()
    page.locator("#bx-user-picker label", has_text="Oleg Operator").click()
    page.locator("#bx-user-ok").click()
    app.locator("#pick-default_user_id .chip", has_text="Oleg Operator").wait_for()
    app.locator("#save-options").click()
    app.locator("#options-status.ok").wait_for()
    app.locator("#test-connection").click()
    app.locator("#test-result.ok").wait_for(timeout=30_000)
    shot(page, "settings")
    # then
    options = portal_options(portal)
    assert (options.card_mode, options.default_user_id) == ("answer", 2)
    assert options.stakeholder_email_list == ["boss@example.com"]
    assert UnitalkConnection.objects.get(portal=portal).api_key == "SandboxKey01"

    # when: she opens the CRM list and retries the failed update
    app.locator("#tab-failed").click()
    app.locator(".subtab[data-kind=crm_sync_failed]").click()
    row = app.locator(f"tr[data-id='{item.pk}']")
    row.wait_for()
    # people's words in the row, the technical reason behind "Details"
    assert "could not be saved" in row.locator(".reason").inner_text()
    assert "ACCESS_DENIED" in row.locator(".reason details").text_content()
    shot(page, "failed-calls")
    row.locator("button[data-act=retry]").click()
    # then: the worker re-runs the job, the item is resolved and leaves the open list
    wait_until(
        lambda: FailedCall.objects.get(pk=item.pk).state == FailedCall.State.RESOLVED,
        timeout=60,
        message="the retried job to resolve the item",
    )
    row.wait_for(state="detached", timeout=30_000)
    app.locator(".subtab[data-kind=crm_sync_failed] .badge").filter(has_text="0").wait_for()
    app.locator("#filters select[name=state]").select_option("resolved")
    app.locator("#filters button[type=submit]").click()
    app.locator(f"tr[data-id='{item.pk}'][data-state=resolved]").wait_for()
    shot(page, "failed-calls-resolved")


def test_crm_tab_and_call_card_show_the_calls_sync_state(sandbox, stack, browser):
    # given: a lead with two calls, one of them recorded, one whose CRM update failed
    portal = install(sandbox)
    lead = control(sandbox, f"portals/{portal.member_id}/lead", {"phone": "+380501112233"})
    lead_id = int(lead.get("ID") or lead.get("id") or lead["lead"]["ID"])
    now = timezone.now()
    answered = Call.objects.create(
        portal=portal,
        unitalk_call_id="u-1",
        direction=Call.Direction.IN,
        status=Call.Status.ENDED,
        state="ANSWER",
        ended=True,
        client_number="380501112233",
        started_at=now,
        talk_seconds=42,
    )
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=answered,
        bitrix_call_id="externalCall.demo.1",
        stage=CallSync.Stage.RECORDED,
        phone_number="380501112233",
        crm_entity_type="LEAD",
        crm_entity_id=lead_id,
        record_file_id=7,
        record_url=f"{sandbox.unitalk_url}/tracking/rec/1/2026-01-01",
    )
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.CLICK_TO_CALL,
        bitrix_call_id="externalCall.demo.2",
        stage=CallSync.Stage.REGISTERED,
        phone_number="380501112233",
        crm_entity_type="LEAD",
        crm_entity_id=lead_id,
        last_error="telephony.externalCall.finish: 503, retrying",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # when: the lead card is opened
    page.goto(f"{sandbox.bitrix_url}/portal/{portal.member_id}/lead/{lead_id}/?user=2")
    tab = page.frame_locator("iframe")
    tab.locator("#crm-calls tbody tr").first.wait_for()
    # then
    assert tab.locator("#crm-calls tbody tr").count() == 2
    assert tab.locator("audio").count() == 1
    # the sync error is technical: behind "Details", not in the row's text
    assert "503" not in tab.locator("#crm-calls").inner_text()
    assert "503" in tab.locator("#crm-calls details").text_content()
    shot(page, "crm-tab")

    # when: the call card tab is opened for the live call (a form POST, as the portal does)
    tokens = control(sandbox, f"portals/{portal.member_id}/tokens", {"user_id": "2"})
    page.set_viewport_size({"width": 560, "height": 240})  # the call card tab is narrow
    page.set_content(call_card_form(stack.base_url, portal, tokens["access_token"]))
    page.locator("#placement[data-placement=CALL_CARD]").wait_for()
    # then: it polls the live state; a change on the server shows up without a reload
    assert "Bitrix24" in page.locator('[data-field="stage"]').inner_text()
    CallSync.objects.filter(bitrix_call_id="externalCall.demo.2").update(
        stage=CallSync.Stage.FINISHED, last_error=""
    )
    page.locator('[data-field="stage"]').filter(has_text="saved in Bitrix24").wait_for(
        timeout=20_000
    )
    shot(page, "call-card")


def call_card_form(app_url: str, portal: Portal, auth_id: str) -> str:
    options = '{"CALL_ID":"externalCall.demo.2","PHONE_NUMBER":"+380501112233"}'
    return (
        f"<form id=f method=post action='{app_url}/bitrix/placement/?DOMAIN={portal.domain}"
        "&PROTOCOL=0&LANG=en&APP_SID=x'>"
        f"<input name=AUTH_ID value='{auth_id}'><input name=member_id value='{portal.member_id}'>"
        f"<input name=PLACEMENT value=CALL_CARD><input name=PLACEMENT_OPTIONS value='{options}'>"
        "</form><script>document.getElementById('f').submit()</script>"
    )


def test_settings_in_ukrainian(sandbox, stack, browser):
    # given
    portal = install(sandbox)
    tokens = control(sandbox, f"portals/{portal.member_id}/tokens", {"user_id": "1"})
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    # when: the portal opens the settings page with LANG=ua
    page.set_content(
        f"<form id=f method=post action='{stack.base_url}/bitrix/app/settings/"
        f"?DOMAIN={portal.domain}&PROTOCOL=0&LANG=ua&APP_SID=x'>"
        f"<input name=AUTH_ID value='{tokens['access_token']}'>"
        f"<input name=member_id value='{portal.member_id}'></form>"
        "<script>document.getElementById('f').submit()</script>"
    )
    page.locator("#options-form").wait_for()
    # then
    assert page.locator("#save-options").inner_text() == "Зберегти налаштування"
    shot(page, "settings-uk")
