"""The call pipeline end to end: sandbox portal + Unitalk over real HTTP, the app as gunicorn +
a real Celery worker + beat (tests/support/stack.py), installed through the sandbox."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from integration.calls import dial, sync
from integration.calls.models import CallSync, FailedCall
from integration.models import Job, JobAttempt, Notification
from sandbox import server as sandbox_server
from tests.support.stack import app_stack
from tests.support.waiting import wait_until
from tests.support.world import World, sandbox_env, sandbox_settings

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@contextmanager
def call_world(
    tmp_path,
    settings,
    *,
    env: dict[str, str] | None = None,
    concurrency: int = 4,
    procfile_lanes: bool = False,
    **sandbox_kw,
) -> Iterator[World]:
    """Sandbox in-process, app processes on the test database, portal installed and wired."""
    handle = sandbox_server.start(app_url="http://127.0.0.1:9", state_path=None, **sandbox_kw)
    base_env = {
        **sandbox_env(handle),
        "JOB_BACKOFF_BASE_S": "1",
        "JOB_BACKOFF_CAP_S": "30",
        "HTTP_CONNECT_TIMEOUT": "2",
        "HTTP_READ_TIMEOUT": "5",
        **(env or {}),
    }
    sandbox_settings(settings, handle)
    settings.RATELIMIT_DIR = tmp_path / "ratelimit"
    try:
        with app_stack(
            tmp_path, env=base_env, concurrency=concurrency, procfile_lanes=procfile_lanes
        ) as stack:
            handle.world.settings.app_url = stack.base_url
            settings.APP_BASE_URL = stack.base_url
            world = World(handle, stack)
            world.install()
            try:
                yield world
            except BaseException:
                print(jobs_report())
                print(stack.log("worker")[-6000:])
                raise
    finally:
        handle.stop()


def jobs_report() -> str:
    """What the jobs did, for failure messages."""
    return "\n".join(
        f"{j.kind} {j.state} attempts={j.attempts} {j.last_error_class}: {j.last_error[:200]}"
        for j in Job.objects.order_by("pk")
    )


def _synced(**filters: Any) -> bool:
    return CallSync.objects.filter(
        stage__in=(CallSync.Stage.FINISHED, CallSync.Stage.RECORDED), **filters
    ).exists()


def test_answered_click_to_call_is_finished_200_with_its_record(tmp_path, settings):
    with call_world(tmp_path, settings) as world:
        # when Anna clicks a number in the CRM
        out = world.bx(
            f"portals/{world.portal.member_id}/click-to-call",
            {"user_id": "1", "phone": "+380501234567"},
        )
        call_id = out["call"]["CALL_ID"]

        # then the call is dialed, finished and recorded in Bitrix24
        wait_until(
            lambda: CallSync.objects.filter(
                bitrix_call_id=call_id, stage=CallSync.Stage.RECORDED
            ).exists(),
            timeout=90,
            message="the click-to-call to be finished and recorded",
        )
        state = world.portal_state()
        assert state["finished"][call_id]["CALL_FAILED_CODE"] == "200"
        assert state["finished"][call_id]["CALL_DURATION"] == 4
        assert [r["CALL_ID"] for r in state["records"]] == [call_id]
        # the portal registered it; we never did
        assert len(state["finished"]) == 1
        assert not state["calls"]


def test_five_clicks_at_once_on_the_procfiles_threaded_interactive_worker_each_dial_once(
    tmp_path, settings
):
    # given: the lanes as the Procfile runs them, the interactive one a single process whose
    # thread pool takes several clicks side by side (docs/pipeline.md, "Lanes")
    with call_world(tmp_path, settings, concurrency=1, procfile_lanes=True) as world:
        assert started(world, "worker-interactive")["pool"] == "thread"
        assert started(world, "worker")["pool"] == "prefork"
        # when: five people click at the same moment
        member = world.portal.member_id
        call_ids: list[str] = []

        def click(i: int) -> None:
            out = world.bx(
                f"portals/{member}/click-to-call", {"user_id": "1", "phone": f"+38050123450{i}"}
            )
            call_ids.append(out["call"]["CALL_ID"])

        threads = [threading.Thread(target=click, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # then: each is dialled once, finished once with 200, and its one dial job ran once
        wait_until(
            lambda: (
                CallSync.objects.filter(
                    bitrix_call_id__in=call_ids, stage=CallSync.Stage.RECORDED
                ).count()
                == 5
            ),
            timeout=90,
            message="the five clicks to be finished and recorded",
        )
        unitalk = requests.get(f"{world.sandbox.unitalk_url}/_sandbox/state?log=0", timeout=30)
        metas = Counter(c.get("meta") for c in unitalk.json()["unitalk"]["calls"])
        assert {call_id: metas[call_id] for call_id in call_ids} == dict.fromkeys(call_ids, 1)
        finished = world.portal_state()["finished"]
        assert sorted(finished[c]["CALL_FAILED_CODE"] for c in call_ids) == ["200"] * 5
        dials = Job.objects.filter(kind=dial.KIND_DIAL)
        assert sorted(dials.values_list("state", "attempts")) == [(Job.State.SUCCEEDED, 1)] * 5
        assert not Job.objects.filter(kind="bitrix.event").exists()  # routed at the door


def started(world: World, name: str) -> dict[str, Any]:
    """The worker's JSON "worker starting" line."""
    lines = (json.loads(line) for line in world.stack.log(name).splitlines() if line[:1] == "{")
    return next(line for line in lines if line["message"] == "worker starting")


def test_missed_inbound_call_is_finished_304_with_an_item_and_a_notification(tmp_path, settings):
    with call_world(tmp_path, settings) as world:
        # when a client calls line 102 and nobody answers
        call = world.ut("calls", {"from": "380509998877", "line": "102", "outcome": "noanswer"})
        unitalk_id = str(call["call"]["id"])

        # then Bitrix24 has a missed call, Oleg (line 102) a callback item and a notification
        wait_until(
            lambda: (
                FailedCall.objects.filter(kind=FailedCall.Kind.MISSED).exists()
                and Notification.objects.filter(kind="call.missed").exists()
            ),
            timeout=90,
            message="the missed-call item and notification",
        )
        finished = [
            f
            for f in world.portal_state()["finished"].values()
            if f["EXTERNAL_CALL_ID"] == unitalk_id
        ]
        assert len(finished) == 1
        assert finished[0]["CALL_FAILED_CODE"] == "304"
        assert finished[0]["INCOMING"] == "2"
        item = FailedCall.objects.get(kind=FailedCall.Kind.MISSED)
        assert item.phone_number == "380509998877"
        assert Notification.objects.get(kind="call.missed").user_id == item.owner_user_id


def test_unitalk_down_for_a_while_is_retried_with_growing_delays_then_placed(tmp_path, settings):
    # Unitalk is down for a few seconds: a click retries at 0.5, 1, 2, 4 s (CALL_CLICK_RETRY_BASE_S)
    # within its deadline, kept long here so a loaded machine cannot expire it.
    with call_world(tmp_path, settings, env={"CALL_CLICK_DEADLINE_S": "40"}) as world:
        world.fault("unitalk", "down")
        out = world.bx(
            f"portals/{world.portal.member_id}/click-to-call",
            {"user_id": "1", "phone": "+380501234568"},
        )
        call_id = out["call"]["CALL_ID"]
        wait_until(
            lambda: (
                JobAttempt.objects.filter(job__kind=dial.KIND_DIAL, decision="retry").count() >= 4
            ),
            timeout=60,
            message="four failed dial attempts",
        )
        world.fault("unitalk", "down", rate=0)

        wait_until(
            lambda: _synced(bitrix_call_id=call_id),
            timeout=90,
            message="the call to be placed and finished once Unitalk is back",
        )
        job = Job.objects.get(kind=dial.KIND_DIAL)
        assert job.state == Job.State.SUCCEEDED
        delays = list(
            JobAttempt.objects.filter(job=job, decision="retry")
            .order_by("number")
            .values_list("delay_s", flat=True)
        )
        assert len(delays) >= 4
        assert all(a < b for a, b in itertools.pairwise(delays)), delays
        assert world.portal_state()["finished"][call_id]["CALL_FAILED_CODE"] == "200"


def test_unitalk_down_for_good_opens_a_dial_failed_item_and_tells_the_user(tmp_path, settings):
    with call_world(tmp_path, settings, env={"CALL_CLICK_DEADLINE_S": "6"}) as world:
        world.fault("unitalk", "down")
        out = world.bx(
            f"portals/{world.portal.member_id}/click-to-call",
            {"user_id": "1", "phone": "+380501234569"},
        )
        call_id = out["call"]["CALL_ID"]

        wait_until(
            lambda: (
                FailedCall.objects.filter(kind=FailedCall.Kind.DIAL_FAILED).exists()
                and _synced(bitrix_call_id=call_id)
            ),
            timeout=60,
            message="a dial_failed item and the Bitrix24 call finished as failed",
        )
        item = FailedCall.objects.get(kind=FailedCall.Kind.DIAL_FAILED)
        assert item.job.state == Job.State.DEAD
        assert item.owner_user_id == 1
        assert Notification.objects.filter(kind="call.dial_failed", user_id=1).exists()
        finished = world.portal_state()["finished"][call_id]
        assert finished["CALL_FAILED_CODE"] == "480"
        assert "did not accept the call within 6 seconds" in finished["CALL_FAILED_REASON"]


def test_bitrix_down_keeps_calls_and_syncs_them_exactly_once_when_back(tmp_path, settings):
    with call_world(tmp_path, settings, env={"JOB_BACKOFF_CAP_S": "4"}) as world:
        # given Bitrix24 down while three answered inbound calls happen
        world.fault("bitrix", "down")
        ids = [
            str(world.ut("calls", {"from": f"38050777000{i}", "outcome": "answer"})["call"]["id"])
            for i in range(3)
        ]
        wait_until(
            lambda: CallSync.objects.filter(call__ended=True).count() == 3,
            timeout=60,
            message="the three calls to be known and waiting",
        )
        assert world.finished_by_external_id() == Counter()

        # when Bitrix24 is back
        world.fault("bitrix", "down", rate=0)

        # then every call is finished exactly once, with its record
        wait_until(
            lambda: CallSync.objects.filter(stage=CallSync.Stage.RECORDED).count() == 3,
            timeout=120,
            message="the three calls synced and recorded",
        )
        finished = world.finished_by_external_id()
        assert {i: finished[i] for i in ids} == dict.fromkeys(ids, 1)
        assert not world.portal_state()["calls"]
        wait_until(
            lambda: Job.objects.filter(kind=sync.KIND_SYNC, state=Job.State.SUCCEEDED).count() == 3,
            timeout=30,
            message="every call's sync job to see its call finished",
        )
