"""Issue 21 item 1 end to end: a click while Unitalk answers 500 fails visibly within 20 s and
is never dialled later on its own; "Try again" dials it once (sandbox over real HTTP, gunicorn,
a real worker and beat)."""

from __future__ import annotations

import time

import pytest
import requests

from integration.calls import failed
from integration.calls.models import FailedCall
from integration.models import Job
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _dials(world) -> list[dict]:
    """directCall requests Unitalk (the sandbox) received, with their answer status."""
    log = requests.get(f"{world.sandbox.unitalk_url}/_sandbox/state?log=2000", timeout=30).json()
    return [
        entry
        for entry in log["log"]
        if entry["server"] == "unitalk" and entry["path"].rstrip("/").endswith("phones/directCall")
    ]


def test_a_click_while_unitalk_fails_fails_visibly_fast_and_is_never_dialled_later(
    tmp_path, settings
):
    # A background dial's horizon shortened to 8 s: the quiet window below is longer than it.
    env = {"CALL_CLICK_DEADLINE_S": "15", "CALL_DIAL_HORIZON_S": "8"}
    with call_world(tmp_path, settings, env=env) as world:
        # given Unitalk answering 500 to everything
        world.fault("unitalk", "500")

        # when Anna clicks a number
        clicked = time.monotonic()
        out = world.bx(
            f"portals/{world.portal.member_id}/click-to-call",
            {"user_id": "1", "phone": "+380501234570"},
        )
        call_id = out["call"]["CALL_ID"]

        # then within 20 s: the Bitrix24 call finished as failed with the reason, and she is told
        def visible() -> bool:
            state = world.portal_state()
            finished = state["finished"].get(call_id)
            told = [n for n in state["notifications"] if n["USER_ID"] == "1"]
            return bool(finished) and any("Try again" in n["MESSAGE"] for n in told)

        wait_until(visible, timeout=20, message="the failed click to be visible")
        assert time.monotonic() - clicked <= 20
        finished = world.portal_state()["finished"][call_id]
        assert finished["CALL_FAILED_CODE"] == "480"
        assert "within 15 seconds" in finished["CALL_FAILED_REASON"]
        job = Job.objects.get(kind="call.dial")
        assert (job.state, job.last_error_class) == (Job.State.DEAD, "DialExpired")
        attempts = len(_dials(world))
        assert attempts >= 3  # it did retry quickly meanwhile

        # when Unitalk is fine again
        world.fault("unitalk", "500", rate=0)

        # then nothing dials the customer on its own, for longer than the background horizon
        quiet_until = time.monotonic() + 12
        while time.monotonic() < quiet_until:
            assert len(_dials(world)) == attempts, "a directCall reached Unitalk after the expiry"
            time.sleep(0.5)  # polling the sandbox log over the window, not synchronising

        # and "Try again" dials it now, once
        item = FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED)
        failed.failed_call_retry(item=item)
        wait_until(
            lambda: any(d["status"] == 200 for d in _dials(world)),
            timeout=20,
            message="the retried click to reach Unitalk",
        )
        assert [d["status"] for d in _dials(world)].count(200) == 1
