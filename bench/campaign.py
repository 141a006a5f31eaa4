"""Benchmark: how much of the agents' available time a campaign keeps them on calls, and how
fast a free agent gets the next number.

Run: .venv/bin/python bench/campaign.py        # ~2-3 min with the defaults

Creates a throwaway PostgreSQL database (bench/harness.py), starts the sandbox (portal + OAuth + Unitalk) in this
process and the app as gunicorn + a Celery worker + beat (tests/support/stack.py), installs the
app (lines 101/102 → users 1/2), seeds BENCH_ITEMS contacts with phones, and runs one CRM-filter
campaign with both agents (tick CAMPAIGN_TICK_S, no wrap-up) until it finishes. The simulator
plays every call in real time: answered after `ring_time` 2 s, ended BENCH_TALK_S seconds later.

Per agent, from the app's own rows: an attempt is "on a call" from its directCall (the
`call.dial` job's end) until the app settled it on CALL_END; the agent's available time is from
their first directCall to their last settled call. utilisation = time on calls / available
time (target ≥ 0.9). next_dial = the next directCall of the same agent minus the moment the
previous call was settled. Last line:
`campaign: utilisation=<u> next_dial_p50_ms=<ms> next_dial_p95_ms=<ms>`.

Environment: BENCH_PG (default postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL (default
redis://127.0.0.1:6379/12), BENCH_ITEMS (30), BENCH_TALK_S (4), BENCH_TIMEOUT_S (600).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import tempfile
import time
from datetime import time as clock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness  # the path above first
from bench.harness import PG, REDIS, log

ITEMS = int(os.environ.get("BENCH_ITEMS", "30"))
TALK_S = int(os.environ.get("BENCH_TALK_S", "4"))
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", "600"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    with harness.database("bench_campaign") as database:
        env = {
            "DJANGO_DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
            "DATABASE_URL": f"{PG}/{database}",
            "DATABASE_CONN_MAX_AGE": "0",
            "REDIS_URL": REDIS,
            "CELERY_BROKER_URL": REDIS,
            "CAMPAIGN_TICK_S": "1",
            # Agents are polled as in production, only faster: the dialer asks their presence
            # (docs/agents.md §5.1) before every number.
            "AGENT_POLL_WORK_S": "2",
            "AGENT_POLL_OFF_S": "2",
            "AGENT_POLL_TICK_S": "0.5",
            "AGENT_WORK_START_HOUR": "0",
            "AGENT_WORK_END_HOUR": "24",
            "AGENT_WRAP_UP_S": "0",
        }
        os.environ.update(env)
        harness.migrate({**os.environ})
        run(tmp, env)


def run(tmp: Path, env: dict[str, str]) -> None:
    from django.conf import settings

    from integration.agents.models import AgentState, State
    from integration.campaigns import services
    from integration.campaigns.models import Campaign, CampaignItem
    from sandbox import server as sandbox_server
    from tests.support.stack import app_stack
    from tests.support.world import World, sandbox_env

    handle = sandbox_server.start(app_url="http://127.0.0.1:9", state_path=None)
    try:
        app_env = {**sandbox_env(handle), **env}
        for name, value in sandbox_env(handle).items():
            os.environ[name] = value
        settings.BITRIX24_PORTAL_HOSTS = ["127.0.0.1", "localhost"]
        with app_stack(tmp, env=app_env, concurrency=4) as stack:
            handle.world.settings.app_url = stack.base_url
            settings.APP_BASE_URL = stack.base_url  # the webhook URL wired into Unitalk
            world = World(handle, stack)
            portal = world.install()
            # Calls in real time: an agent is on a call for its ring and talk seconds.
            world.ut(
                "settings",
                {"event_delay": 0.1, "talk_time": TALK_S, "ring_time": 2, "real_time": True},
            )
            for user_id in (1, 2):  # both agents clock in; the app's poll must see it
                world.bx(f"portals/{portal.member_id}/workday", {"user_id": user_id, "op": "open"})
            deadline = time.monotonic() + 60
            while AgentState.objects.filter(state=State.AVAILABLE).count() < 2:
                if time.monotonic() > deadline:
                    raise SystemExit("the agents did not become available")
                time.sleep(0.5)
            world.bx(
                f"portals/{portal.member_id}/crm-seed",
                {"entity_type_id": 3, "count": ITEMS, "phone_from": "380501230001"},
            )
            campaign = services.campaign_create(
                portal=portal,
                name="bench",
                agent_user_ids=[1, 2],
                source=Campaign.Source.CRM_FILTER,
                source_params={"entity_type_id": 3, "filter": {}},
                timezone="UTC",
                window_start=clock(0, 0),
                window_end=clock(23, 59, 59),
                wrap_up_s=0,
            )
            services.campaign_load_enqueue(campaign=campaign)
            deadline = time.monotonic() + TIMEOUT_S
            while CampaignItem.objects.filter(campaign=campaign).count() < ITEMS:
                if time.monotonic() > deadline:
                    raise SystemExit("the contacts were not loaded")
                time.sleep(0.5)
            log(f"loaded {ITEMS} contacts; dialling with 2 agents, {TALK_S} s talk ...")
            services.campaign_start(campaign=campaign)
            while not Campaign.objects.filter(pk=campaign.pk, state="finished").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the campaign did not finish in time")
                time.sleep(0.5)
            measure(campaign)
    finally:
        handle.stop()


def measure(campaign) -> None:
    from collections import Counter, defaultdict

    from integration.campaigns.models import Attempt, CampaignItem
    from integration.models import Job

    dial_end = {
        job.payload["sync_id"]: job.finished_at
        for job in Job.objects.filter(kind="call.dial", state=Job.State.SUCCEEDED)
    }
    per_agent: dict[int, list[tuple[object, object]]] = defaultdict(list)
    for attempt in Attempt.objects.filter(item__campaign=campaign).exclude(outcome=""):
        dialled = dial_end.get(attempt.call_sync_id)
        if dialled is not None and attempt.finished_at is not None:
            per_agent[attempt.agent_user_id].append((dialled, attempt.finished_at))
    on_call = available = 0.0
    gaps: list[float] = []
    for spans in per_agent.values():
        spans.sort()
        on_call += sum((end - start).total_seconds() for start, end in spans)  # type: ignore[operator]
        available += (spans[-1][1] - spans[0][0]).total_seconds()  # type: ignore[operator]
        gaps += [
            (nxt[0] - prev[1]).total_seconds() * 1000  # type: ignore[operator]
            for prev, nxt in itertools.pairwise(spans)
        ]
    states = Counter(CampaignItem.objects.filter(campaign=campaign).values_list("state", flat=True))
    log(f"items={dict(states)} attempts={sum(len(s) for s in per_agent.values())} "
        f"agents={sorted(per_agent)} on_call_s={on_call:.1f} available_s={available:.1f}")  # fmt: skip
    utilisation = on_call / available if available else 0.0
    p50 = statistics.median(gaps) if gaps else 0.0
    p95 = percentile(gaps, 0.95) if gaps else 0.0
    log(
        f"campaign: utilisation={utilisation:.3f} next_dial_p50_ms={p50:.0f} next_dial_p95_ms={p95:.0f}"
    )


if __name__ == "__main__":
    main()
