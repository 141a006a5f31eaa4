"""How close do 4 worker processes get to a portal's REST ceiling without collecting 503s?

    .venv/bin/python bench/bitrix_throughput.py            # ~60 s
    BENCH_SECONDS=20 .venv/bin/python bench/bitrix_throughput.py

Starts the sandbox (portal + OAuth server, default bucket burst 50 / drain 2 per second) in this
process, creates a portal, and gives 4 worker processes a backlog of independent REST calls
(`profile`) that is far larger than the run can serve. Every worker goes through
`integration.bitrix.client` and so through the shared limiter (Redis with REDIS_URL, files
otherwise). The ceiling over the run is what the portal could accept at most:
(burst + drain * duration) / duration requests per second.

Last line: `bitrix_throughput: ratio=<achieved/ceiling> rejected_503=<n>`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4
DURATION_S = float(os.environ.get("BENCH_SECONDS", "60"))
BACKLOG = 10_000


def _django(ratelimit_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitrixapp.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ["LOG_LEVEL"] = "CRITICAL"
    import django

    django.setup()
    from django.conf import settings

    settings.RATELIMIT_DIR = Path(ratelimit_dir)
    settings.BITRIX24_PORTAL_HOSTS = ["127.0.0.1"]


def worker(
    creds: dict[str, Any],
    backlog: Any,
    results: Any,
    start_at: float,
    stop_at: float,
    ratelimit_dir: str,
) -> None:
    _django(ratelimit_dir)
    from bitrixapp.models import Portal
    from integration.bitrix import client
    from integration.core.errors import IntegrationError, RateLimitedError

    # An unsaved Portal: the client needs no database unless the token must be refreshed.
    portal = Portal(
        member_id=creds["member_id"],
        domain=creds["domain"],
        client_endpoint=creds["client_endpoint"],
        status=Portal.Status.ACTIVE,
        access_token=creds["access_token"],
        refresh_token=creds["refresh_token"],
        rate_burst=int(creds["burst"]),
        rate_drain=float(creds["drain"]),
    )
    ok = rejected = other = 0
    first = last = 0.0
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        try:
            backlog.get_nowait()
        except Exception:
            break  # backlog drained
        sent_at = time.time()
        try:
            client.call(portal, "profile")
            ok += 1
        except RateLimitedError as exc:
            if exc.code == "QUERY_LIMIT_EXCEEDED":
                rejected += 1
            elif exc.service == "ratelimit":
                # Our own limiter said "more than max_wait": a job would be rescheduled; retry.
                time.sleep(min(exc.retry_after, max(0.0, stop_at - time.time())))
                continue
            else:
                other += 1
        except IntegrationError:
            other += 1
        first = first or sent_at
        last = time.time()
    results.put({"ok": ok, "rejected_503": rejected, "other": other, "first": first, "last": last})


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from sandbox import server as sandbox_server

    handle = sandbox_server.start(app_url="http://127.0.0.1:8000", state_path=None)
    ratelimit_dir = tempfile.mkdtemp(prefix="bench-ratelimit-")
    try:
        creds = _post(f"{handle.bitrix_url}/_sandbox/portals", {})
        ctx = mp.get_context("spawn")
        backlog = ctx.Queue()
        for i in range(BACKLOG):
            backlog.put(i)
        results = ctx.Queue()
        start_at = time.time() + 3.0  # workers import Django first, then start together
        stop_at = start_at + DURATION_S
        procs = [
            ctx.Process(
                target=worker, args=(creds, backlog, results, start_at, stop_at, ratelimit_dir)
            )
            for _ in range(WORKERS)
        ]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=DURATION_S + 120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        backlog.cancel_join_thread()
    finally:
        handle.stop()

    ok = sum(o["ok"] for o in outcomes)
    rejected = sum(o["rejected_503"] for o in outcomes)
    other = sum(o["other"] for o in outcomes)
    first = min(o["first"] for o in outcomes if o["first"])
    last = max(o["last"] for o in outcomes)
    duration = max(1e-6, last - first)
    burst, drain = float(creds["burst"]), float(creds["drain"])
    ceiling = (burst + drain * duration) / duration
    achieved = ok / duration
    print(f"workers={WORKERS} duration_s={duration:.1f} bucket={burst:g}/{drain:g}")
    print(f"accepted={ok} rejected_503={rejected} other_errors={other}")
    print(f"achieved_rps={achieved:.3f} ceiling_rps={ceiling:.3f}")
    print(f"bitrix_throughput: ratio={achieved / ceiling:.3f} rejected_503={rejected}")


if __name__ == "__main__":
    main()
