"""Benchmark: drain a backlog of finished calls into one Bitrix24 portal at its REST ceiling.

Run: .venv/bin/python bench/sync_throughput.py

It creates a throwaway PostgreSQL database, migrates it, starts the sandbox (portal + OAuth +
Unitalk) in this process with the default limits (burst 50, drain 2 requests/s), a Celery
worker (BENCH_CONCURRENCY processes) and beat as subprocesses, seeds BENCH_CALLS calls that had
already ended when the app first saw them (inbound, answered, no CRM match, no recording: the
register+finish path alone), and waits until every one is finished in the sandbox portal.

Figures come from the sandbox's own request log: REST requests from the first to the last,
how many were answered 503 QUERY_LIMIT_EXCEEDED, and finished calls (each must be exactly one).
ceiling = (burst + drain * duration) / duration requests per second; ratio = achieved / ceiling.
The last line: `sync_throughput: ratio=<r> rejected_503=<n> calls_per_s=<x>`. Target ratio ≥ 0.9
with no 503.

The stack is stood up by bench/harness.py. Environment: BENCH_PG (server URL, default
postgres://postgres@127.0.0.1:5432), BENCH_REDIS_URL (default redis://127.0.0.1:6379/12),
BENCH_CALLS (3000), BENCH_CONCURRENCY (8), BENCH_TIMEOUT_S (600).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import harness  # the path above first
from bench.harness import log

CALLS = int(os.environ.get("BENCH_CALLS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", "600"))
BURST, DRAIN = 50, 2.0


def main() -> None:
    from sandbox import server as sandbox_server

    queue = f"bench-sync-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    handle = sandbox_server.start(app_url="http://127.0.0.1:9", state_path=None)
    try:
        with harness.database("bench_sync") as database:
            env = harness.app_env(handle, database=database, queue=queue, tmp=tmp)
            log(f"migrating {database} ...")
            harness.migrate(env)
            member_id = seed(handle)
            argvs = [harness.worker_argv(queue, concurrency=CONCURRENCY), harness.beat_argv()]
            with harness.processes(argvs, env=env, log=tmp / "worker.log"):
                time.sleep(3)  # worker boot; the jobs wait in the broker meanwhile anyway
                measure(handle, member_id)
    finally:
        handle.stop()


def seed(handle) -> str:
    from django.utils import timezone

    from integration.unitalk.models import OperatorMapping
    from tests.support.world import ended_calls_seed

    portal = harness.portal_seed(handle)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    log(f"seeding {CALLS} finished calls ...")
    ended_calls_seed(
        portal=portal, count=CALLS, prefix="bench", started_at=timezone.now() - timedelta(hours=2)
    )
    return portal.member_id


def measure(handle, member_id: str) -> None:
    from integration.calls.models import CallSync

    started = time.monotonic()
    done = 0
    while time.monotonic() - started < TIMEOUT_S:
        done = CallSync.objects.filter(stage=CallSync.Stage.FINISHED).count()
        if done >= CALLS:
            break
        time.sleep(0.5)
    store = handle.world.store
    with store.lock:
        entries = [
            dict(e)
            for e in store.data["log"]
            if e.get("server") == "bitrix" and "/rest/" in str(e.get("path", ""))
        ]
        finished = list(store.data["portals"][member_id]["finished"].values())
    per_call = Counter(str(f["EXTERNAL_CALL_ID"]) for f in finished)
    duplicates = sum(n - 1 for n in per_call.values() if n > 1)
    if not entries:
        raise SystemExit("no REST requests reached the sandbox")
    first = min(e["at"] for e in entries)
    last = max(e["at"] + e["ms"] / 1000 for e in entries)
    duration = max(last - first, 1e-6)
    requests_n = len(entries)
    rejected = sum(1 for e in entries if e["status"] == 503)
    achieved = requests_n / duration
    ceiling = (BURST + DRAIN * duration) / duration
    ratio = achieved / ceiling
    calls_per_s = len(per_call) / duration
    log(
        f"calls={CALLS} synced={done} finished_in_bitrix={len(per_call)} duplicates={duplicates}"
        f" requests={requests_n} duration_s={duration:.1f} achieved_rps={achieved:.2f}"
        f" ceiling_rps={ceiling:.2f}"
    )
    from integration.models import Job

    outcomes = Counter(
        f"{kind}:{state}:{error}"
        for kind, state, error in Job.objects.values_list("kind", "state", "last_error_class")
    )
    log("jobs: " + ", ".join(f"{k}={n}" for k, n in sorted(outcomes.items())))
    if os.environ.get("BENCH_VERBOSE"):
        from integration.models import JobAttempt

        rows = JobAttempt.objects.filter(job__kind="call.sync", finished_at__isnull=False)
        spans = sorted(
            ((a.finished_at - a.started_at).total_seconds(), a.started_at, a.error_class)
            for a in rows
        )
        log(f"  sync attempts={len(spans)} slowest={[(round(x, 2), e) for x, _, e in spans[-8:]]}")
        for e in sorted(entries, key=lambda e: e["at"]):
            log(f"  {e['at'] - first:7.2f}s {e['ms']:7.1f}ms {e['status']} {e['path']}")
    if done < CALLS:
        log(f"WARNING: only {done} of {CALLS} calls synced within {TIMEOUT_S:.0f} s")
    log(f"sync_throughput: ratio={ratio:.3f} rejected_503={rejected} calls_per_s={calls_per_s:.1f}")


if __name__ == "__main__":
    main()
