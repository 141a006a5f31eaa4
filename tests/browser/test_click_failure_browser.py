"""Issue 21 item 1 in Chromium: the call card of a click-to-call that Unitalk refuses shows its
retries, then the failure with its reason and "Try again" within 20 s; "Try again" dials once
the fault is gone, and the failed click itself never reaches Unitalk afterwards.

The app runs as processes (gunicorn + worker + beat, tests/e2e/test_calls_pipeline.call_world)
with a short click deadline; the card is the CALL_CARD placement, opened as the portal does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from integration.models import Job
from tests.e2e.test_calls_pipeline import call_world
from tests.support import browser as shared
from tests.support.waiting import wait_until

browser = shared.browser
shot = shared.shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

DEADLINE_S = 8  # CALL_CLICK_DEADLINE_S of this stack: quick retries, then the failure


def _dials(world: Any, since: float = 0.0) -> list[dict[str, Any]]:
    """directCall requests the sandbox Unitalk received since `since` (its clock is ours)."""
    log = requests.get(f"{world.sandbox.unitalk_url}/_sandbox/state?log=2000", timeout=30).json()
    return [
        entry
        for entry in log["log"]
        if entry["server"] == "unitalk"
        and entry["path"].rstrip("/").endswith("phones/directCall")
        and entry["at"] >= since
    ]


def _card_form(world: Any, call_id: str, phone: str) -> str:
    """The portal's form POST of the CALL_CARD placement into the app (docs/bitrix24.md)."""
    portal = world.portal
    tokens = world.bx(f"portals/{portal.member_id}/tokens", {"user_id": "1"})
    options = json.dumps({"CALL_ID": call_id, "PHONE_NUMBER": phone})
    return (
        f"<form id=f method=post action='{world.stack.base_url}/bitrix/placement/"
        f"?DOMAIN={portal.domain}&PROTOCOL=0&LANG=en&APP_SID=x'>"
        f"<input name=AUTH_ID value='{tokens['access_token']}'>"
        f"<input name=member_id value='{portal.member_id}'>"
        "<input name=PLACEMENT value=CALL_CARD>"
        f"<input name=PLACEMENT_OPTIONS value='{options}'>"
        "</form><script>document.getElementById('f').submit()</script>"
    )


def test_call_card_shows_retries_then_the_failure_and_try_again_dials_once(
    tmp_path, settings, browser, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls between browser steps
    env = {"CALL_CLICK_DEADLINE_S": str(DEADLINE_S), "CALL_CLICK_RETRY_BASE_S": "0.5"}
    with call_world(tmp_path, settings, env=env) as world:
        # given Unitalk refusing every request (the sandbox's 500 fault)
        world.fault("unitalk", "500")

        # when Anna clicks a number and her call card opens
        phone = "+380501234571"
        clicked = time.time()
        out = world.bx(
            f"portals/{world.portal.member_id}/click-to-call", {"user_id": "1", "phone": phone}
        )
        call_id = out["call"]["CALL_ID"]
        page = browser.new_page(viewport={"width": 1280, "height": 420})
        page.set_content(_card_form(world, call_id, phone))
        page.locator("#placement[data-placement=CALL_CARD]").wait_for()

        # then the card shows the retries as they happen: the attempt and the seconds left
        progress = page.locator("#dial-progress")
        progress.filter(has_text="trying again").wait_for(timeout=DEADLINE_S * 1000)
        assert "attempt" in progress.inner_text()
        assert "s left" in progress.inner_text()
        shot(page, "call-card-click-retrying-1280")

        # and then, within 20 s of the click, the failure with its reason and "Try again"
        failed = page.locator("#dial-failed")
        failed.wait_for(state="visible", timeout=20_000)
        failed_at = time.time()
        assert failed_at - clicked <= 20
        reason = page.locator('[data-field="dial-reason"]').inner_text()
        assert f"within {DEADLINE_S} seconds" in reason
        assert "The call was not placed" in progress.inner_text()
        again = page.locator("#dial-try-again")
        assert again.is_visible()
        assert "call.dial" not in page.locator("#placement").inner_text()  # no job kinds shown
        shot(page, "call-card-click-failed-1280")
        page.set_viewport_size({"width": 800, "height": 420})
        assert again.is_visible()
        shot(page, "call-card-click-failed-800")
        refused = len(_dials(world))
        assert refused >= 2  # it did retry meanwhile, each refused
        job = Job.objects.get(kind="call.dial")
        assert (job.state, job.last_error_class) == (Job.State.DEAD, "DialExpired")

        # when the fault is cleared and Anna presses "Try again"
        world.fault("unitalk", "500", rate=0)
        cleared = time.time()
        assert _dials(world, since=failed_at) == []  # nothing dialled the failed click meanwhile
        again.click()

        # then Unitalk dials once, and the card says her phone is ringing
        progress.filter(has_text="ringing").wait_for(timeout=20_000)
        wait_until(
            lambda: Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED,
            timeout=20,
            message="the retried dial to succeed",
        )
        dials = _dials(world, since=cleared)
        assert [d["status"] for d in dials] == [200]
        assert failed.is_hidden()
        shot(page, "call-card-click-try-again-800")
