"""Benchmark: agent-status polling on one portal with 200 mapped agents while a call-sync
backlog drains through the same portal's REST budget.

Run: .venv/bin/python bench/agent_status.py

Stands up the stack with bench/harness.py (throwaway PostgreSQL database, the sandbox in this
process, a Celery worker for both lanes and beat as subprocesses), seeds BENCH_AGENTS portal users
mapped to Unitalk lines with their work day open, and a backlog of BENCH_CALLS ended calls.
First the agents' first poll (settings, users, departments and work days of every agent: 13
requests for 200 agents, printed as first_poll_requests), taken while the backlog drains, so
that phase 2 measures polling as it runs from then on: work days every period, users every
AGENT_USERS_EVERY_S (5 min), settings daily. Then two phases of BENCH_PHASE_S seconds in the
same run, same worker, same backlog:
1. polling off (beat runs with AGENT_POLL_ENABLED=false);
2. polling on: this process plays beat's `agents.poll_all` entry every AGENT_POLL_TICK_S
   (the worker and the poll period BENCH_POLL_S are the production code), and flips one random
   agent's work day in the portal every BENCH_FLIP_S seconds (open <-> close), timing how long
   until the app's AgentState shows it.
Figures: requests_per_min = REST requests the polls spent per minute of phase 2 and the tail
after it, as the portal counted them (the sandbox's per-method request counts: every batch of
timeman.status / timeman.settings / user.get / department.get); staleness_p95_s = p95 of
flip -> state in the app;
sync_ratio = calls synced per second in phase 2 / phase 1 (target >= 0.9).
Last line: `agent_status: requests_per_min=.. staleness_p95_s=.. sync_ratio=..`.

Environment: BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL
(redis://127.0.0.1:6379/12), BENCH_AGENTS (200), BENCH_CALLS (12000), BENCH_PHASE_S (60),
BENCH_POLL_S (60), BENCH_FLIP_S (2), BENCH_CONCURRENCY (4).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness  # the path above first
from bench.harness import REDIS, log

AGENTS = int(os.environ.get("BENCH_AGENTS", "200"))
CALLS = int(os.environ.get("BENCH_CALLS", "12000"))
PHASE_S = float(os.environ.get("BENCH_PHASE_S", "60"))
POLL_S = float(os.environ.get("BENCH_POLL_S", "60"))
FLIP_S = float(os.environ.get("BENCH_FLIP_S", "2"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
TICK_S = 1.0
#: How long after phase 2 polling goes on for flips the app has not seen yet.
STALE_WAIT_S = float(os.environ.get("BENCH_STALE_WAIT_S", "600"))
WARMUP_S = 10.0


def main() -> None:
    from sandbox import server as sandbox_server

    queue = f"bench-agents-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    handle = sandbox_server.start(app_url="http://127.0.0.1:9", state_path=None)
    extra = {
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        # Beat never polls; this process plays its agents-poll entry in phase 2 only.
        "AGENT_POLL_ENABLED": "false",
        "AGENT_POLL_WORK_S": str(POLL_S),
        "AGENT_POLL_OFF_S": str(POLL_S),
        "AGENT_WORK_START_HOUR": "0",
        "AGENT_WORK_END_HOUR": "24",
    }
    try:
        with harness.database("bench_agents") as database:
            env = harness.app_env(handle, database=database, queue=queue, tmp=tmp, extra=extra)
            log(f"migrating {database} ...")
            harness.migrate(env)
            portal = seed(handle)
            # Both lanes: beat's jobs_dispatch (which re-sends the polls rescheduled for budget)
            # is published to the interactive queue; a background-only worker never ran it.
            argvs = [harness.worker_argv(queue, concurrency=CONCURRENCY), harness.beat_argv()]
            with harness.processes(argvs, env=env, log=tmp / "worker.log"):
                measure(handle, portal)
    finally:
        handle.stop()


def control(handle, path: str, payload: dict) -> dict:
    import requests

    response = requests.post(f"{handle.bitrix_url}/_sandbox/{path}", json=payload, timeout=10)
    response.raise_for_status()
    return response.json()


def seed(handle):
    from django.utils import timezone

    from integration.unitalk.models import OperatorMapping
    from tests.support.world import ended_calls_seed

    users = [
        {"ID": str(i), "NAME": f"Agent{i}", "inner": str(1000 + i)} for i in range(1, AGENTS + 1)
    ]
    portal = harness.portal_seed(handle, users=users)
    OperatorMapping.objects.bulk_create(
        OperatorMapping(portal=portal, bitrix_user_id=i, line=str(1000 + i))
        for i in range(1, AGENTS + 1)
    )
    for i in range(1, AGENTS + 1):
        control(handle, f"portals/{portal.member_id}/workday", {"user_id": i, "op": "open"})
    log(f"seeding {CALLS} finished calls and {AGENTS} agents ...")
    ended_calls_seed(
        portal=portal,
        count=CALLS,
        prefix="bench",
        started_at=timezone.now() - timedelta(hours=2),
        line="1001",
    )
    return portal


POLL_METHODS = ("timeman.status", "timeman.settings", "user.get", "department.get")


def poll_requests(handle, portal) -> int:
    """Requests the portal admitted for the polls' readings (one per batch of 50)."""
    import requests

    state = requests.get(f"{handle.bitrix_url}/_sandbox/state?log=0", timeout=30).json()
    counts = state.get("requests", {}).get(portal.member_id, {})
    return sum(counts.get(f"batch:{m}", 0) + counts.get(m, 0) for m in POLL_METHODS)


def synced() -> int:
    from integration.calls.models import CallSync

    return CallSync.objects.filter(stage=CallSync.Stage.FINISHED).count()


def phase(seconds: float, tick=None) -> float:
    """Calls synced per second over `seconds`, calling `tick()` every 0.1 s meanwhile."""
    start_n, start = synced(), time.monotonic()
    while time.monotonic() < start + seconds:
        if tick is not None:
            tick()
        time.sleep(0.1)
    return (synced() - start_n) / (time.monotonic() - start)


class Poller:
    """Plays beat's agents-poll entry (this process only) and flips work days in the portal.

    Single-threaded on purpose: Celery's current app is per thread, and a job enqueued from
    another thread would be published with the default app's settings.
    """

    def __init__(self, handle, portal) -> None:
        self.handle, self.portal = handle, portal
        self.rng = random.Random(13)
        self.next_tick = self.next_flip = 0.0
        self.flipping = True
        self.pending: list[tuple[int, str, float]] = []
        self.staleness: list[float] = []
        self.truth: dict[int, str] = {}  # every agent's day was opened by seed()

    def tick(self) -> None:
        from integration.agents import poll
        from integration.agents.models import AgentState

        now = time.monotonic()
        if now >= self.next_tick:
            poll.agents_poll_enqueue_all()
            self.next_tick = now + TICK_S
        if self.flipping and now >= self.next_flip:
            # The portal's truth is tracked here: a flip counts once the app shows it.
            user = self.rng.randint(1, AGENTS)
            if all(p[0] != user for p in self.pending):
                want = "CLOSED" if self.truth.get(user, "OPENED") == "OPENED" else "OPENED"
                op = "close" if want == "CLOSED" else "reopen"
                control(
                    self.handle,
                    f"portals/{self.portal.member_id}/workday",
                    {"user_id": user, "op": op},
                )
                self.truth[user] = want
                self.pending.append((user, want, time.monotonic()))
            self.next_flip = now + FLIP_S
        for item in list(self.pending):
            status = (
                AgentState.objects.filter(portal=self.portal, bitrix_user_id=item[0])
                .values_list("timeman_status", flat=True)
                .first()
            )
            if status == item[1]:
                self.staleness.append(time.monotonic() - item[2])
                self.pending.remove(item)


def first_poll(handle, portal) -> None:
    """The agents' first poll, as after an install: one job, run by the worker to the end."""
    from django.conf import settings

    from integration.agents import poll
    from integration.models import Job

    before = poll_requests(handle, portal)
    settings.AGENT_POLL_ENABLED = True  # this process only
    poll.agents_poll_enqueue_all()
    settings.AGENT_POLL_ENABLED = False
    give_up = time.monotonic() + 300
    while Job.objects.filter(kind=poll.KIND_POLL).exclude(state="succeeded").exists():
        if time.monotonic() > give_up:
            raise SystemExit("the first poll did not finish within 300 s")
        time.sleep(0.5)
    log(f"  first_poll_requests={poll_requests(handle, portal) - before}")


def measure(handle, portal) -> None:
    from django.conf import settings

    from integration.agents import poll
    from integration.models import Job

    wait_until = time.monotonic() + 120
    while synced() == 0 and time.monotonic() < wait_until:  # worker boot, backlog flowing
        time.sleep(0.5)
    first_poll(handle, portal)
    time.sleep(WARMUP_S)  # the portal's burst is spent: both phases run at its steady drain
    log("phase 1: polling off")
    rate_off = phase(PHASE_S)
    log(f"  calls_per_s={rate_off:.1f}")

    log("phase 2: polling on")
    settings.AGENT_POLL_ENABLED = True  # this process only; beat's stays off
    poller = Poller(handle, portal)
    started, spent_before = time.monotonic(), poll_requests(handle, portal)
    rate_on = phase(PHASE_S, poller.tick)
    backlog_left = CALLS - synced()
    # Polling goes on (no new flips) until every flip is seen, or STALE_WAIT_S.
    poller.flipping = False
    give_up = time.monotonic() + STALE_WAIT_S
    while poller.pending and time.monotonic() < give_up:
        poller.tick()
        time.sleep(0.1)
    # REST slots the polls spent, per minute of polling (phase 2 and the tail after it).
    polling_min = (time.monotonic() - started) / 60
    spent = poll_requests(handle, portal) - spent_before
    polls = list(Job.objects.filter(kind=poll.KIND_POLL).values_list("state", flat=True))
    if os.environ.get("BENCH_VERBOSE"):
        import redis
        from django.db import connection

        queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
        from bitrixapp.celery import app as celery_app

        client = redis.Redis.from_url(REDIS)
        # Redis keeps one list per message priority (kombu: "<queue>\x06\x16<step>").
        waiting = sum(client.llen(key) for key in (queue, f"{queue}\x06\x163"))
        log(f"  in_atomic={connection.in_atomic_block} llen={waiting}"
            f" conf_queue={celery_app.conf.task_default_queue} queue={queue}")  # fmt: skip
        for job in Job.objects.filter(kind=poll.KIND_POLL)[:3]:
            log(f"  {job.pk} {job.state} attempts={job.attempts} next={job.next_attempt_at}"
                f" enq={job.enqueued_at} err={job.last_error[:200]}")  # fmt: skip
    staleness = sorted(poller.staleness)
    p95 = staleness[max(0, int(len(staleness) * 0.95 + 0.5) - 1)] if staleness else float("nan")
    log(
        f"  calls_per_s={rate_on:.1f} polls={len(polls)} states={sorted(set(polls))}"
        f" poll_requests={spent} polling_min={polling_min:.1f} flips_measured={len(staleness)}"
        f" flips_unresolved={len(poller.pending)}"
        f" staleness_max_s={max(staleness) if staleness else float('nan'):.1f}"
        f" backlog_left_after_phase={backlog_left}"
    )
    if backlog_left <= 0:
        log("WARNING: the backlog ran out during the run; raise BENCH_CALLS")
    ratio = rate_on / rate_off if rate_off else float("nan")
    log(
        f"agent_status: requests_per_min={spent / polling_min:.1f}"
        f" staleness_p95_s={p95:.1f} sync_ratio={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
