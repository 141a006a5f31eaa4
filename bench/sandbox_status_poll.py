"""What one agent-status poll costs the sandbox portal: a `batch` of 50 `timeman.status`.

    .venv/bin/python bench/sandbox_status_poll.py          # ~2 s
    BENCH_ROUNDS=200 .venv/bin/python bench/sandbox_status_poll.py

Starts the sandbox portal in this process (docs/sandbox.md "Agents"), seeds 200 agents with a
third of them clocked in, and times batches of 50 `timeman.status?USER_ID=N` (the app's poll,
docs/agents.md §1.1) over real HTTP. It measures the simulator, not the app: the figure says
how much of a poll's latency in an end-to-end run or benchmark is the sandbox's own.

Last line: `sandbox_status_poll: rounds=.. median_ms=.. p95_ms=..`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import server

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))


def main() -> None:
    handle = server.start(app_url="http://127.0.0.1:1", state_path=None)
    try:
        http = requests.Session()
        base = f"{handle.bitrix_url}/_sandbox/portals"
        # A generous operating budget: 40 polls x 50 commands x 0.05 s is already 100 s of 480.
        limits = {"burst": 10_000, "drain": 1000, "operating_limit": 1e9}
        portal = http.post(base, json=limits).json()
        actions = f"{base}/{portal['member_id']}"
        http.post(f"{actions}/users-seed", json={"count": 200, "first_id": 3, "inner_from": 201})
        for user_id in range(3, 203, 3):
            http.post(f"{actions}/workday", json={"user_id": user_id, "op": "open"})
        took = []
        for i in range(ROUNDS):
            first = 3 + (i % 4) * 50
            cmd = {f"u{n}": f"timeman.status?USER_ID={n}" for n in range(first, first + 50)}
            started = time.perf_counter()
            answer = http.post(
                f"{portal['client_endpoint']}batch",
                json={"auth": portal["access_token"], "cmd": cmd},
            )
            took.append(time.perf_counter() - started)
            if answer.status_code != 200 or answer.json()["result"]["result_error"]:
                raise SystemExit(f"poll failed: {answer.status_code} {answer.text[:300]}")
        took.sort()
        p95 = took[max(0, int(0.95 * len(took)) - 1)]
        print(
            f"sandbox_status_poll: rounds={ROUNDS} median_ms={statistics.median(took) * 1000:.1f} "
            f"p95_ms={p95 * 1000:.1f}"
        )
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
