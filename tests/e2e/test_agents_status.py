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
