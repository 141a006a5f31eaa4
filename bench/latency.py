"""How long a person waits: click-to-call, call end → finish, and what another portal's backlog
adds to it (issue 17), through real processes.

    .venv/bin/python bench/latency.py          # both configurations, 2 and 4 worker processes
    BENCH_CONFIGS=pg BENCH_WORKERS=2 .venv/bin/python bench/latency.py

Each configuration runs in a child process that stands the stack up as `make run` does: gunicorn,
the interactive worker (the Procfile's line: one process, a pool of 8 threads), the background
worker (the other worker processes: BENCH_WORKERS 2 means one of each) and beat, with the
sandbox (portal, OAuth, Unitalk) in the child over loopback HTTP, and installs the app through
it. `pg`: a throwaway PostgreSQL database, Redis as broker and budget store. `embedded`: SQLite,
the filesystem broker, file budgets (no server at all).

Times are taken in the sandbox, in the same process and clock as the driver: a click from the
moment the portal starts posting ONEXTERNALCALLSTART to the moment Unitalk receives the
directCall (portal_ms: the portal's own work before that, kept apart); a call end from the moment Unitalk starts posting CALL_END to the moment Bitrix24
records the finish. floor = one HTTP round trip to Unitalk + one broker hop (a job that does
nothing). fairness: portal X gets a 2,000-call backlog (ended calls, as reconciliation finds
them) and portal Y's clicks and call ends are measured while X drains, minus without it.

Lines (one each): `click_to_call: p50_ms=.. p95_ms=.. floor_ms=.. at_once=1|5 ...`,
`call_end_to_finish: p50_ms=.. p95_ms=.. ...`, `fairness: added_p95_ms=.. ...`,
`backlog: calls=2000 drained_s=.. ...`.

Pacing: a person's click or call end waits for the app, not for the providers' budgets, so the
measured load stays within them: one click or call end every BENCH_GAP_S (1 s; Unitalk allows a
key 2 directCalls a second after a burst of 10, Bitrix24 a portal 2 requests a second after
50) and a round of five clicks every BENCH_ROUND_S (3 s: five of Unitalk's slots refilled).
BENCH_GAP_S=0 sends them back to back, as fast as the app answers, and measures the budgets.

Environment: BENCH_CONFIGS (pg,embedded), BENCH_WORKERS (2,4), BENCH_CLICKS (40),
BENCH_ENDS (12), BENCH_BACKLOG (2000), BENCH_INTERACTIVE_PROCS (1), BENCH_PG (postgres://postgres@127.0.0.1:5432),
BENCH_REDIS_URL / BENCH_BROKER_URL (redis://127.0.0.1:6379/12 and /13).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
BIN = Path(PY).parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
CLICKS = int(os.environ.get("BENCH_CLICKS", "40"))
ENDS = int(os.environ.get("BENCH_ENDS", "12"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "2000"))
GAP_S = float(os.environ.get("BENCH_GAP_S", "1.0"))
ROUND_S = float(os.environ.get("BENCH_ROUND_S", "3.0"))
INTERACTIVE_PROCS = int(os.environ.get("BENCH_INTERACTIVE_PROCS", "1"))

# Filled by the sandbox hooks below: when each thing reached the sandbox (time.time()).
dialled: dict[str, float] = {}  # directCall meta (the Bitrix24 CALL_ID) -> received
finished: dict[str, float] = {}  # CALL_ID and EXTERNAL_CALL_ID -> finish recorded
ended: dict[str, float] = {}  # Unitalk call id -> CALL_END about to be posted
batches: dict[str, int] = {}  # portal member_id -> batch requests received
last_batch: dict[str, float] = {}  # portal member_id -> when its last batch was received
answered: dict[str, float] = {}  # CALL_ID -> the app answered its ONEXTERNALCALLSTART
posted: dict[str, float] = {}  # CALL_ID -> the portal started posting its ONEXTERNALCALLSTART


def log(message: str) -> None:
    print(message, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError("timed out")


_arrived = threading.Condition()


def noted() -> None:
    """A hook noted an arrival: wake the drivers waiting for one."""
    with _arrived:
        _arrived.notify_all()


def arrival(times: dict[str, float], key: str, timeout: float = 60.0) -> float:
    """When `key` reached the sandbox. Woken by the hooks, not polling: five drivers polling
    every few milliseconds took the interpreter from the sandbox they measure."""
    with _arrived:
        if not _arrived.wait_for(lambda: key in times, timeout=timeout):
            raise TimeoutError(f"{key} never arrived")
        return times[key]


def hook_sandbox() -> None:
    """Note arrival times inside the sandbox (same process, same clock as the driver)."""
    from sandbox import world as sandbox_world
    from sandbox.bitrix import rest
    from sandbox.unitalk import api, calls

    post_event = sandbox_world.World._post_event

    def post_event_noted(self: Any, record: dict[str, Any]) -> None:
        sent = time.time()
        post_event(self, record)
        marker = "CALL_ID%5D="
        if marker in record["body"]:
            call_id = urllib.parse.unquote(record["body"].split(marker, 1)[1].split("&", 1)[0])
            posted.setdefault(call_id, sent)
            answered.setdefault(call_id, time.time())
            noted()

    sandbox_world.World._post_event = post_event_noted  # type: ignore[method-assign]

    direct = api.API["phones/directCall"]

    def direct_call(app: Any, project: Any, payload: dict[str, Any]) -> Any:
        dialled.setdefault(str(payload.get("meta") or ""), time.time())
        noted()
        return direct(app, project, payload)

    api.API["phones/directCall"] = direct_call
    finish = rest.METHODS["telephony.externalcall.finish"]

    def call_finish(call: Any) -> Any:
        result = finish(call)
        now = time.time()
        finished.setdefault(str(result["CALL_ID"]), now)
        finished.setdefault(str(result["EXTERNAL_CALL_ID"]), now)
        noted()
        return result

    rest.METHODS["telephony.externalcall.finish"] = call_finish
    batch = rest.Engine.batch

    def batch_counted(self: Any, portal: dict[str, Any], *args: Any) -> Any:
        member = str(portal.get("member_id", ""))
        batches[member] = batches.get(member, 0) + 1
        result = batch(self, portal, *args)
        last_batch[member] = time.time()
        return result

    rest.Engine.batch = batch_counted  # type: ignore[method-assign]
    deliver = calls.deliver

    def deliver_noted(app: Any, project: Any, event: str, call: Any, settings: Any) -> None:
        if event == "CALL_END":
            ended.setdefault(str(call["id"]), time.time())
        deliver(app, project, event, call, settings)

    calls.deliver = deliver_noted


def child(config: str, workers: int) -> None:
    from cryptography.fernet import Fernet

    from sandbox import server as sandbox_server
    from tests.support.world import sandbox_env

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-latency-{config}-"))
    queue = f"bench-lat-{uuid.uuid4().hex[:6]}"
    database = f"bench_lat_{uuid.uuid4().hex[:8]}"
    handle = sandbox_server.start(app_url="http://127.0.0.1:9", state_path=None)
    hook_sandbox()
    env = {
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "APP_VAR_DIR": str(tmp / "var"),
        "DJANGO_STATIC_ROOT": str(tmp / "static"),
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp / "beat-schedule"),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
        **sandbox_env(handle),
    }
    if config == "pg":
        env |= {"DATABASE_URL": f"{PG}/{database}", "REDIS_URL": REDIS, "CELERY_BROKER_URL": BROKER}
        _psql(f'CREATE DATABASE "{database}"')
    else:
        env |= {
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "filesystem://localhost/",
            "CELERY_BROKER_DIR": str(tmp / "broker"),
        }
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    try:
        subprocess.run(
            [PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env}, check=True
        )
        import django

        django.setup()
        measure_stack(handle, env, tmp, config, workers)
    finally:
        handle.stop()
        if config == "pg":
            from django.db import connections

            connections.close_all()
            _psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def measure_stack(handle: Any, env: dict[str, str], tmp: Path, config: str, workers: int) -> None:
    from contextlib import ExitStack

    from django.conf import settings

    from bitrixapp.celery import app as celery_app
    from tests.support.processes import procfile_command, running
    from tests.support.stack import Stack, free_port
    from tests.support.world import World, sandbox_settings

    celery_app.conf.task_default_queue = env["CELERY_TASK_DEFAULT_QUEUE"]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox_settings(settings, handle)
    settings.APP_BASE_URL = base_url  # the webhook URL this process gives Unitalk
    env = {**env, "APP_BASE_URL": base_url, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    queue = env["CELERY_TASK_DEFAULT_QUEUE"]

    def worker(queues: str, concurrency: int) -> list[str]:
        return [str(BIN / "celery"), "-A", "bitrixapp", "worker", "--loglevel", "WARNING",
                "--queues", queues, "--concurrency", str(concurrency), "--prefetch-multiplier",
                "1", "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip

    argvs = {
        "web": [
            str(BIN / "gunicorn"),
            "bitrixapp.wsgi",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
        ],  # processes and threads from gunicorn.conf.py: WEB_CONCURRENCY, WEB_THREADS
        # The Procfile's own line: one process, a thread pool (CELERY_INTERACTIVE_CONCURRENCY);
        # BENCH_INTERACTIVE_PROCS runs it that many times (as `honcho start -c`).
        **{
            f"worker{n or ''}": [
                *procfile_command("worker-interactive"),
                *("--hostname", f"interactive{n}@%h"),
            ]
            for n in range(INTERACTIVE_PROCS)
        },
        "worker-background": worker(queue, max(1, workers - 1)),
        "beat": [str(BIN / "celery"), "-A", "bitrixapp", "beat", "--loglevel", "WARNING"],
    }
    stack = Stack(base_url=base_url, env=env, logs=tmp)
    with ExitStack() as procs:
        for name, argv in argvs.items():
            stack.procs[name] = procs.enter_context(running(argv, env=env, log=tmp / f"{name}.log"))
        os.environ["DATABASE_CONN_MAX_AGE"] = "0"
        _wait_ready(stack)
        handle.world.settings.app_url = base_url
        world = World(handle, stack)
        world.install()
        world.ut("settings", {"event_delay": 0.05, "talk_time": 0, "ring_time": 0})
        label = f"config={config} workers={workers} interactive_procs={INTERACTIVE_PROCS}"
        run_measurements(world, handle, label)


def _wait_ready(stack: Any) -> None:
    # Processes log at WARNING here, so no INFO readiness markers: /healthz, then the install
    # (a job) proves a worker is up.
    import requests

    wait_for(lambda: _ok(requests, stack.base_url + "/healthz"), timeout=90)


def _ok(requests: Any, url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


portal_ms: list[float] = []  # of each click: the sandbox portal's work before it posts the event
app_door_ms: list[float] = []  # of each click: the event's POST until the app answered it
after_door_ms: list[float] = []  # of each click: from the door's answer to the directCall


def paced(measure: Callable[[], float], gap_s: float) -> Callable[[], float]:
    """`measure()`, then the rest of `gap_s` (a load generator's pacing, not a wait for state)."""

    def run() -> float:
        started = time.monotonic()
        value = measure()
        time.sleep(max(0.0, gap_s - (time.monotonic() - started)))
        return value

    return run


def click(world: Any, phone: str) -> float:
    """ONEXTERNALCALLSTART in → directCall out (issue 17's definition): from the moment the
    portal starts posting the event, as call_end counts from CALL_END's post. The portal's own
    work before that (the click handled, the call registered) is kept apart, in portal_ms."""
    started = time.time()
    out = world.bx(
        f"portals/{world.portal.member_id}/click-to-call", {"user_id": "1", "phone": phone}
    )
    call_id = out["call"]["CALL_ID"]
    done = arrival(dialled, call_id)
    sent = arrival(posted, call_id)
    portal_ms.append((sent - started) * 1000)
    app_door_ms.append((answered[call_id] - sent) * 1000)
    after_door_ms.append((done - answered[call_id]) * 1000)
    return (done - sent) * 1000


def clicks_at_once(world: Any, n: int, prefix: str) -> list[float]:
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(click(world, f"+38063{prefix}{i:03d}")))
        for i in range(n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def call_end(world: Any, number: str) -> float:
    out = world.ut("calls", {"from": number, "line": "101", "outcome": "answer", "talk_time": 0})
    unitalk_id = str(out["call"]["id"])
    done = arrival(finished, unitalk_id)
    return (done - ended[unitalk_id]) * 1000


def floor_ms(world: Any) -> float:
    """One HTTP round trip to Unitalk (a refused directCall) + one broker hop (a no-op job)."""
    import requests

    from bitrixapp.models import BitrixEvent
    from integration import jobs

    trips, hops = [], []
    for _ in range(10):
        started = time.perf_counter()
        requests.post(f"{world.sandbox.unitalk_url}/api/phones/directCall", json={}, timeout=10)
        trips.append((time.perf_counter() - started) * 1000)
        event = BitrixEvent.objects.create(
            portal=world.portal, event="ONBENCHPING", dedupe_key=uuid.uuid4().hex, data={}
        )
        started_at = time.time()
        jobs.job_enqueue(kind="bitrix.event", key=f"ping:{event.pk}", portal=world.portal,
                         payload={"event_id": event.pk})  # fmt: skip

        def processed(pk: int = event.pk) -> Any:
            return BitrixEvent.objects.filter(pk=pk).values_list("processed_at", flat=True)[0]

        hops.append((wait_for(processed, timeout=30).timestamp() - started_at) * 1000)
    return statistics.median(trips) + statistics.median(hops)


def backlog_portal(world: Any, count: int) -> Any:
    """Portal X with `count` ended calls to drain (as reconciliation would find them)."""
    from django.utils import timezone

    from bench import harness
    from integration.unitalk.models import OperatorMapping
    from tests.support.world import ended_calls_seed

    portal = harness.portal_seed(world.sandbox, api_key=f"BacklogKey{uuid.uuid4().hex[:6]}")
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    ended_calls_seed(
        portal=portal, count=count, prefix="x", started_at=timezone.now() - timedelta(hours=2)
    )
    return portal


def settle() -> None:
    """Wait until the interactive lane has nothing left of the previous phase: the five-at-once
    clicks' calls leave ~30 webhook and drain jobs behind, and the first call end measured right
    after them queued behind those (a p95 of ~5 s from 4 ends, not a property of call ends)."""
    from integration.models import Job
    from integration.unitalk.models import UnitalkEvent

    open_states = (Job.State.PENDING, Job.State.RUNNING, Job.State.RETRYING)
    wait_for(
        lambda: (
            not Job.objects.filter(state__in=open_states, payload__lane="interactive").exists()
            and not UnitalkEvent.objects.filter(state=UnitalkEvent.State.RECEIVED).exists()
        ),
        timeout=120,
    )


def run_measurements(world: Any, handle: Any, label: str) -> None:
    from integration.calls.models import CallSync

    click(world, "+380630000000")  # warm up every process once
    call_end(world, "380660000000")
    floor = floor_ms(world)
    settle()
    one = [paced(lambda i=i: click(world, f"+3806310{i:05d}"), GAP_S)() for i in range(CLICKS)]
    log(f"click_to_call: p50_ms={pct(one, 0.5):.0f} p95_ms={pct(one, 0.95):.0f}"
        f" floor_ms={floor:.0f} at_once=1 n={len(one)} portal_p50_ms={pct(portal_ms, 0.5):.0f}"
        f" app_door_p50_ms={pct(app_door_ms, 0.5):.0f}"
        f" gap_s={GAP_S:g} {label}")  # fmt: skip
    five: list[float] = []
    portal_ms.clear()
    app_door_ms.clear()
    after_door_ms.clear()
    for round_ in range(max(1, CLICKS // 5)):
        settle()
        round_started = time.monotonic()
        five += clicks_at_once(world, 5, f"2{round_:02d}")
        time.sleep(max(0.0, ROUND_S - (time.monotonic() - round_started)))
    log(f"click_to_call: p50_ms={pct(five, 0.5):.0f} p95_ms={pct(five, 0.95):.0f}"
        f" floor_ms={floor:.0f} at_once=5 n={len(five)} portal_p95_ms={pct(portal_ms, 0.95):.0f}"
        f" app_door_p95_ms={pct(app_door_ms, 0.95):.0f}"
        f" after_door_p95_ms={pct(after_door_ms, 0.95):.0f}"
        f" round_s={ROUND_S:g} {label}")  # fmt: skip
    settle()
    ends = [paced(lambda i=i: call_end(world, f"38066100{i:04d}"), GAP_S)() for i in range(ENDS)]
    log(f"call_end_to_finish: p50_ms={pct(ends, 0.5):.0f} p95_ms={pct(ends, 0.95):.0f}"
        f" n={len(ends)} gap_s={GAP_S:g} {label}")  # fmt: skip

    # Portal X's backlog, then Y's clicks and call ends while it drains.
    seeded = time.monotonic()
    portal_x = backlog_portal(world, BACKLOG)
    seed_s = time.monotonic() - seeded
    started_wall = time.time()
    busy_clicks = [
        paced(lambda i=i: click(world, f"+3806320{i:05d}"), GAP_S)() for i in range(CLICKS)
    ]
    busy_ends = [
        paced(lambda i=i: call_end(world, f"38066200{i:04d}"), GAP_S)() for i in range(ENDS)
    ]
    during = CallSync.objects.filter(portal=portal_x, stage=CallSync.Stage.FINISHED).count()
    wait_for(
        lambda: (
            CallSync.objects.filter(portal=portal_x, stage=CallSync.Stage.FINISHED).count()
            >= BACKLOG
        ),
        timeout=600,
    )
    # Until X's last batch: Y's paced clicks and ends may outlast the drain.
    drained_s = last_batch[portal_x.member_id] - started_wall
    log(f"fairness: added_p95_ms={pct(busy_clicks, 0.95) - pct(one, 0.95):.0f}"
        f" call_end_added_p95_ms={pct(busy_ends, 0.95) - pct(ends, 0.95):.0f}"
        f" busy_click_p95_ms={pct(busy_clicks, 0.95):.0f} busy_end_p95_ms={pct(busy_ends, 0.95):.0f}"
        f" x_finished_meanwhile={during} {label}")  # fmt: skip
    requests_x = batches.get(portal_x.member_id, 0)
    ceiling = (50 + 2.0 * drained_s) / drained_s
    log(f"backlog: calls={BACKLOG} drained_s={drained_s:.1f} seed_s={seed_s:.1f}"
        f" batches={requests_x} rps={requests_x / drained_s:.2f} ceiling_rps={ceiling:.2f}"
        f" {label}")  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    configs = os.environ.get("BENCH_CONFIGS", "pg,embedded").split(",")
    counts = [int(n) for n in os.environ.get("BENCH_WORKERS", "2,4").split(",")]
    for config in configs:
        for workers in counts:
            subprocess.run([PY, __file__, "--child", config, str(workers)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
