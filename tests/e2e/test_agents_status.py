"""Agent status end to end: the sandbox portal (work days, presence) and Unitalk over real HTTP,
the app as gunicorn + a real Celery worker + beat polling with a short period."""

from __future__ import annotations

import time

import pytest
import requests

from bitrixapp import auth
from integration.agents.models import AgentState, Reason, State
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

POLL_S = 2.0
AGENT_ENV = {
    "AGENT_POLL_WORK_S": str(POLL_S),
    "AGENT_POLL_OFF_S": str(POLL_S),
    "AGENT_POLL_TICK_S": "0.5",
    "AGENT_WORK_START_HOUR": "0",
    "AGENT_WORK_END_HOUR": "24",
    "AGENT_WRAP_UP_S": "0",
}


def agent(user_id: int) -> AgentState | None:
    return AgentState.objects.filter(bitrix_user_id=user_id).first()


def state_is(user_id: int, state: str, reason: str = "") -> bool:
    row = agent(user_id)
    return row is not None and (row.state, row.reason) == (state, reason)


def panel(world, *, user_id: int = 1) -> list[dict]:
    token = auth.page_token_issue(world.portal, user_id, True)
    response = requests.get(
        f"{world.stack.base_url}/bitrix/actions/agents/",
        headers={"X-App-Token": token, "X-App-Lang": "en"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["agents"]


def test_clocking_out_in_the_portal_pauses_the_agent_within_one_poll(tmp_path, settings):
    with call_world(tmp_path, settings, env=AGENT_ENV) as world:
        member = world.portal.member_id
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "open"})
        wait_until(lambda: state_is(2, State.AVAILABLE), timeout=30, message="Oleg available")

        # when Oleg closes his work day in Bitrix24
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "close"})
        closed_at = time.monotonic()

        # then within one poll period (plus the beat tick and a job hand-off) he is paused
        wait_until(
            lambda: state_is(2, State.PAUSED, Reason.DAY_CLOSED),
            timeout=POLL_S + 6,
            message="Oleg paused: day closed",
        )
        assert time.monotonic() - closed_at <= POLL_S + 6
        row = next(a for a in panel(world) if a["user_id"] == 2)
        assert row["summary"].startswith("Paused: work day not open in Bitrix24 since ")
        transition = agent(2).transitions.first()
        assert (transition.to_reason, transition.source) == (Reason.DAY_CLOSED, "poll")

        # and reopening the day makes him available again
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "reopen"})
        wait_until(lambda: state_is(2, State.AVAILABLE), timeout=POLL_S + 6, message="back")


def admin_post(world, path: str, body: dict) -> dict:
    token = auth.page_token_issue(world.portal, 1, True)
    response = requests.post(
        f"{world.stack.base_url}/bitrix/actions/agents/{path}",
        json=body,
        headers={"X-App-Token": token, "X-App-Lang": "en"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def notices(world, tag: str) -> list[dict]:
    return [n for n in world.portal_state()["notifications"] if n["TAG"] == f"unitalk:{tag}"]


def test_unitalk_status_api_faults_pause_notify_once_and_recovery_clears(tmp_path, settings):
    from integration.agents.fallback import KIND_SYNC_FAILED
    from integration.models import Notification

    with call_world(tmp_path, settings, env=AGENT_ENV) as world:
        member = world.portal.member_id
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "open"})
        wait_until(lambda: state_is(2, State.AVAILABLE), timeout=30, message="Oleg available")

        # given: Unitalk offers the status API and the admin switches the push on
        world.ut("settings", {"status_api": True})
        admin_post(world, "settings/", {"push_enabled": True})
        wait_until(
            lambda: (
                world.ut("operator-status")["lines"].get("102") == "ONLINE"
                and any(e["source"] == "api" for e in world.ut("operator-status")["log"])
            ),
            timeout=30,
            message="the app to push Oleg's status",
        )

        # when: the status API fails, and Oleg's state changes (he clocks out)
        world.ut("settings", {"status_api_fault": "502"})
        world.bx(f"portals/{member}/workday", {"user_id": 2, "op": "close"})

        # then: he is paused for sync_failed, and he and his manager are told once each
        wait_until(
            lambda: state_is(2, State.PAUSED, Reason.SYNC_FAILED),
            timeout=POLL_S + 30,
            message="Oleg paused: sync failed",
        )
        wait_until(
            lambda: (
                notices(world, "unitalk-status:2") and notices(world, "unitalk-status:2:manager")
            ),
            timeout=30,
            message="the notices to reach the portal",
        )
        assert [n["USER_ID"] for n in notices(world, "unitalk-status:2")] == ["2"]
        assert [n["USER_ID"] for n in notices(world, "unitalk-status:2:manager")] == ["1"]
        open_rows = Notification.objects.filter(kind=KIND_SYNC_FAILED, resolved_at__isnull=True)
        assert sorted((r.tag, r.count) for r in open_rows) == [
            ("unitalk-status:2", 1),
            ("unitalk-status:2:manager", 1),
        ]
        assert row_reason(world, 2) == "status sync failed"

        # when: the API recovers
        world.ut("settings", {"status_api_fault": ""})

        # then: the retry succeeds, the pause reason is the real one again, both notices cleared.
        # The retried push may first send what the app knew when it was queued; the closed day
        # reaches the app by its next poll and is pushed then (last writer wins, push.py), so the
        # two settle together rather than in a fixed order.
        wait_until(
            lambda: (
                state_is(2, State.PAUSED, Reason.DAY_CLOSED)
                and world.ut("operator-status")["lines"]["102"] == "PAUSE"
            ),
            timeout=90,  # backoff with JOB_BACKOFF_CAP_S=30 between attempts
            message="the push retry to succeed and Unitalk to show Oleg paused",
        )
        # The problem notice itself says "until it works again": wait for the clear's own text.
        wait_until(
            lambda: all(
                n["MESSAGE"].startswith("Unitalk status sync works again")
                for tag in ("unitalk-status:2", "unitalk-status:2:manager")
                for n in notices(world, tag)
            ),
            timeout=30,
            message="both Bitrix24 notices replaced",
        )
        assert not Notification.objects.filter(
            kind=KIND_SYNC_FAILED, resolved_at__isnull=True
        ).exists()


def row_reason(world, user_id: int) -> str:
    return next(a for a in panel(world) if a["user_id"] == user_id)["reason_label"]
