"""Fallback routing end to end (issue 15, docs/routing.md): Anna's softphone is offline (the
simulator marks line 101 unregistered), she clicks a number, and within 2 s she is told that
Oleg takes it; the portal's call is finished with the reroute as its reason; Oleg is asked
(ask first) or his line dials the client (dial mode); every call is logged exactly once.
Sandbox over real HTTP, gunicorn, a real worker and beat polling presence."""

from __future__ import annotations

import time

import pytest

from integration.agents.models import AgentState, State
from integration.routing.models import Reroute, RoutingPolicy, Step
from tests.e2e.test_agents_status import AGENT_ENV
from tests.e2e.test_calls_pipeline import call_world
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def available(user_id: int) -> bool:
    row = AgentState.objects.filter(bitrix_user_id=user_id).first()
    return row is not None and row.state == State.AVAILABLE and bool(row.departments)


def told(world, user_id: int, text: str) -> list[dict]:
    return [
        n
        for n in world.portal_state()["notifications"]
        if n["USER_ID"] == str(user_id) and text in n["MESSAGE"]
    ]


def test_an_unregistered_line_hands_the_click_to_a_colleague_ask_first_then_dial(
    tmp_path, settings
):
    with call_world(tmp_path, settings, env=AGENT_ENV) as world:
        member = world.portal.member_id
        for user in (1, 2):
            world.bx(f"portals/{member}/workday", {"user_id": user, "op": "open"})
        wait_until(lambda: available(1) and available(2), timeout=30, message="both available")
        # given Anna's softphone offline: Unitalk ends her operator leg CHANUNAVAIL
        world.ut("lines", {"line": "101", "state": "unregistered"})

        # when Anna clicks a number (ask first, the default)
        clicked = time.monotonic()
        out = world.bx(
            f"portals/{member}/click-to-call", {"user_id": "1", "phone": "+380501234571"}
        )
        call_id = out["call"]["CALL_ID"]

        # then within 2 s she is told that Oleg will call
        wait_until(
            lambda: told(world, 1, "Oleg"), timeout=20, message="Anna told who takes her call"
        )
        assert time.monotonic() - clicked <= 2.0
        # and the portal's call is finished with its code and the reroute as the reason
        wait_until(lambda: call_id in world.portal_state()["finished"], timeout=20,
                   message="the original call finished")  # fmt: skip
        finished = world.portal_state()["finished"][call_id]
        assert finished["CALL_FAILED_CODE"] == "480"
        assert finished["CALL_FAILED_REASON"].startswith("own line failed (the line did not ring)")
        assert finished["CALL_FAILED_REASON"].endswith("→ Oleg Operator")
        # and Oleg is asked, nobody is rung by surprise
        wait_until(lambda: told(world, 2, "+380501234571"), timeout=20, message="Oleg asked")
        reroute = Reroute.objects.get()
        assert (reroute.step, reroute.to_user_id, reroute.state) == (
            Step.DEPARTMENT, 2, Reroute.State.ASKED,
        )  # fmt: skip
        assert reroute.dial_sync is None
        assert world.finished_by_external_id().get(f"reroute-{reroute.pk}") is None

        # when the portal switches to dial mode and Anna clicks another number
        RoutingPolicy.objects.filter(portal=world.portal).update(mode=RoutingPolicy.Mode.DIAL)
        clicked = time.monotonic()
        out = world.bx(
            f"portals/{member}/click-to-call", {"user_id": "1", "phone": "+380501234572"}
        )
        second = out["call"]["CALL_ID"]

        # then she is told at once that Oleg is calling, and his line dials the client
        wait_until(lambda: told(world, 1, "is calling +380501234572"), timeout=20,
                   message="Anna told Oleg is calling")  # fmt: skip
        assert time.monotonic() - clicked <= 2.0
        rerouted = Reroute.objects.get(sync__bitrix_call_id=second)
        external = f"reroute-{rerouted.pk}"
        wait_until(lambda: world.finished_by_external_id().get(external) == 1, timeout=40,
                   message="Oleg's call answered and logged")  # fmt: skip
        state = world.portal_state()
        assert state["finished"][second]["CALL_FAILED_CODE"] == "480"
        new = next(f for f in state["finished"].values() if f["EXTERNAL_CALL_ID"] == external)
        assert (str(new["PORTAL_USER_ID"]), new["CALL_FAILED_CODE"]) == ("2", "200")

        # and everything was logged exactly once
        assert Reroute.objects.count() == 2
        counts = world.finished_by_external_id()
        assert counts[external] == 1
        assert list(state["finished"]).count(second) == 1
