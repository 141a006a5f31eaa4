"""Benchmark: Unitalk webhook intake vs a bare one-INSERT Django view, on gunicorn + PostgreSQL.

Run: .venv/bin/python bench/webhook_intake.py

It creates a throwaway PostgreSQL database, migrates it, seeds one portal with a Unitalk
connection, starts gunicorn on a free port (settings `bench.settings`: the app plus the bare
view), and drives both URLs. Latency comes from an open-loop generator (requests start on a
fixed schedule whatever the server does, and are timed from the scheduled start, so queueing
counts); capacity from a closed loop.

Phases, each bounded in count and time, bare first then ours:
  1. warm-up;
  2. steady: TARGET_RPS for STEADY_S seconds  → p50 / p99 / achieved rps;
  3. capacity: closed loop, BENCH_CAPACITY_CLIENTS connections each sending its next request as
     soon as the last is answered → completed requests per second, in alternating short rounds
     (bare, ours, bare, ours...) on this shared machine. (An open loop at a fixed offered rate
     would cap the faster side at that rate on a quiet machine and flatter the ratio.)
  4. gunicorn stops; the dispatcher's inbox feed (a worker's work, off the request path) gives
     every stored event its job, timed, and the counts show one job per event.
The last line: `webhook_intake: ratio=<ours/bare capacity, median of rounds> p50_ms=<ours steady>
p99_ms=<ours steady> rps=<ours steady achieved>`. Targets: ratio >= 0.6, p99 < 50 ms at 200 requests/s.

Environment: BENCH_PG (server URL, default postgres://postgres@127.0.0.1:5432),
BENCH_BROKER_URL (default redis://127.0.0.1:6379/14), BENCH_WORKERS (gunicorn, default 4),
BENCH_RPS (200), BENCH_STEADY_S (10), BENCH_CAPACITY_CLIENTS (2 x workers), BENCH_CAPACITY_S (2),
BENCH_CAPACITY_ROUNDS (5).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
TARGET_RPS = float(os.environ.get("BENCH_RPS", "200"))
STEADY_S = float(os.environ.get("BENCH_STEADY_S", "10"))
CAPACITY_CLIENTS = int(os.environ.get("BENCH_CAPACITY_CLIENTS", str(2 * WORKERS)))
CAPACITY_S = float(os.environ.get("BENCH_CAPACITY_S", "2"))
CAPACITY_ROUNDS = int(os.environ.get("BENCH_CAPACITY_ROUNDS", "5"))
CLIENT_THREADS = 64


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(database: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        conn.execute(sql)


def app_env(database: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_ENV_FILE": "",  # production-like: no env file, debug off
        "DJANGO_DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": BROKER,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


SEED = """
from bitrixapp.models import Portal
from integration.unitalk import services
portal = Portal.objects.create(member_id="bench", domain="bench.bitrix24.ua",
    client_endpoint="https://bench.bitrix24.ua/rest/", status="active")
connection = services.connection_create(portal=portal, api_key="BenchKey0001")
print(connection.webhook_secret)
"""

FEED = """
import time
from integration import jobs
started = time.perf_counter()
count = 0
while (fed := jobs.jobs_feed()):
    count += fed
elapsed = time.perf_counter() - started
print(f"{elapsed:.2f} s ({elapsed / max(count, 1) * 1e6:.0f} us per event)")
"""


def manage_shell(env: dict[str, str], code: str) -> str:
    """Run `code` in the app's `manage.py shell`; its last line of output (after the shell's
    own start-up notice)."""
    done = subprocess.run(
        [PY, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def call_body(i: int, run: str) -> bytes:
    return json.dumps(
        {
            "event": "CALL_NEW",
            "call": {
                "id": f"{run}{i}",
                "dbid": None,
                "from": "380505557182",
                "to": ["2000"],
                "lastGroupName": "Sales managers",
                "outerNumber": "380443334455",
                "direction": "IN",
                "date": "2026-07-09 16:58:52",
                "secondsFullTime": None,
                "secondsTalk": None,
                "callback": False,
                "state": None,
                "source": "REGULAR",
                "link": None,
                "cause": None,
            },
        }
    ).encode()


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0
    first_start: float = 0.0
    last_end: float = 0.0

    def p(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def rps(self) -> float:
        span = self.last_end - self.first_start
        return len(self.latencies) / span if span > 0 else 0.0


def open_loop(port: int, path: str, *, rate: float, seconds: float, run: str) -> Result:
    """Start request i at t0 + i/rate (bounded by count and by a time limit)."""
    count = int(rate * seconds)
    deadline_s = seconds + 15  # nothing starts after this; stragglers are counted as dropped
    result = Result()
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.2
    local = threading.local()

    def connection() -> http.client.HTTPConnection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        return conn

    def one(i: int) -> None:
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # the open-loop schedule itself
        if time.perf_counter() - t0 > deadline_s:
            with lock:
                result.dropped += 1
            return
        body = call_body(i, run)
        try:
            conn = connection()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                local.conn = None
        except (OSError, http.client.HTTPException):
            ok = False
            local.conn = None
        end = time.perf_counter()
        with lock:
            if ok:
                result.latencies.append(end - scheduled)
                result.last_end = max(result.last_end, end)
            else:
                result.errors += 1

    result.first_start = t0
    with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
        list(pool.map(one, range(count)))
    return result


def closed_loop(port: int, path: str, *, clients: int, seconds: float, run: str) -> Result:
    """Capacity: `clients` connections each send the next request as soon as one is answered,
    for `seconds`. Whatever the server can do, it does; an offered rate cannot cap it."""
    result = Result()
    lock = threading.Lock()
    counter = iter(range(10**9))
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    def client() -> None:
        conn: http.client.HTTPConnection | None = None
        while time.perf_counter() < stop_at:
            with lock:
                i = next(counter)
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(
                    "POST",
                    path,
                    body=call_body(i, run),
                    headers={"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                ok = False
                conn = None
            end = time.perf_counter()
            with lock:
                if ok:
                    result.latencies.append(end - started)
                    result.last_end = max(result.last_end, end)
                else:
                    result.errors += 1

    result.first_start = t0
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def describe(name: str, result: Result) -> str:
    return (
        f"{name}: n={len(result.latencies)} errors={result.errors} dropped={result.dropped} "
        f"p50_ms={result.p(0.50):.1f} p99_ms={result.p(0.99):.1f} rps={result.rps():.0f}"
    )


def cleanup_broker() -> None:
    # Only the keys this run created: the queue of job_run messages and kombu's binding.
    try:
        import redis

        client = redis.Redis.from_url(BROKER)
        client.delete("celery", "_kombu.binding.celery")
    except Exception as exc:  # the figures are printed already; say why cleanup failed
        log(f"broker cleanup skipped: {exc}")


def main() -> int:
    database = f"bench_webhook_{os.getpid()}"
    env = app_env(database)
    psql("postgres", f'CREATE DATABASE "{database}"')
    gunicorn = None
    gunicorn_log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in finally)
        prefix="bench-gunicorn-", suffix=".log", delete=False
    )
    try:
        subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        psql(
            database,
            "CREATE TABLE bench_bare (id bigserial PRIMARY KEY, payload jsonb NOT NULL, "
            "received_at timestamptz NOT NULL DEFAULT now())",
        )
        secret = manage_shell(env, SEED)
        port = free_port()
        gunicorn = subprocess.Popen(
            [
                str(Path(PY).parent / "gunicorn"),
                "bitrixapp.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(WORKERS),
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=gunicorn_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(port)
        paths = {"bare": "/bench/bare/", "ours": f"/unitalk/webhook/{secret}/"}
        run = uuid.uuid4().hex[:6]
        log(
            f"gunicorn {WORKERS} sync workers on :{port} (log {gunicorn_log.name}), "
            f"database {database}, broker {BROKER}"
        )
        for name, path in paths.items():
            warm = open_loop(port, path, rate=100, seconds=1, run=f"{run}w")
            if warm.errors:
                raise RuntimeError(f"{name} warm-up failed ({warm.errors} errors)")
        steady = {
            name: open_loop(port, path, rate=TARGET_RPS, seconds=STEADY_S, run=f"{run}s")
            for name, path in paths.items()
        }
        # Capacity in alternating short rounds: this machine is shared, and background load
        # that comes and goes then hits both sides alike. The ratio is the median of rounds.
        capacity: dict[str, Result] = {}
        ratios = []
        for round_no in range(CAPACITY_ROUNDS):
            round_results = {
                name: closed_loop(
                    port,
                    path,
                    clients=CAPACITY_CLIENTS,
                    seconds=CAPACITY_S,
                    run=f"{run}c{round_no}",
                )
                for name, path in paths.items()
            }
            bare_rps = round_results["bare"].rps()
            ratios.append(round_results["ours"].rps() / bare_rps if bare_rps else 0.0)
            log(
                f"capacity round {round_no + 1}: bare {bare_rps:.0f}/s, "
                f"ours {round_results['ours'].rps():.0f}/s, ratio {ratios[-1]:.2f}"
            )
            for name, result in round_results.items():
                merged = capacity.setdefault(name, Result(first_start=result.first_start))
                merged.latencies += result.latencies
                merged.errors += result.errors
                merged.dropped += result.dropped
        for name in paths:
            log(describe(f"steady {TARGET_RPS:.0f}/s {name}", steady[name]))
        for name in paths:
            log(
                describe(
                    f"capacity ({CAPACITY_CLIENTS} clients, all rounds) {name}", capacity[name]
                ).rsplit(" rps=", 1)[0]
            )
        import psycopg

        # The door stores events only; the dispatcher's feed (a worker's job, off the request
        # path) gives each its job. Run it here, after the load, and time it: its cost per event
        # is part of the price of a webhook too.
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=15)
        fed = manage_shell(env, FEED)
        with psycopg.connect(f"{PG}/{database}") as conn:
            events = conn.execute("SELECT count(*) FROM unitalk_unitalkevent").fetchone()
            job_rows = conn.execute("SELECT count(*) FROM integration_job").fetchone()
        log(
            f"stored: {events and events[0]} webhook events, {job_rows and job_rows[0]} jobs "
            f"(one per event expected); feeding them into jobs took {fed}"
        )
        ratio = sorted(ratios)[len(ratios) // 2]
        ours = steady["ours"]
        log(
            f"webhook_intake: ratio={ratio:.2f} p50_ms={ours.p(0.50):.1f} "
            f"p99_ms={ours.p(0.99):.1f} rps={ours.rps():.0f}"
        )
        return 0
    finally:
        if gunicorn is not None and gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            try:
                gunicorn.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cleanup_broker()
        gunicorn_log.close()


if __name__ == "__main__":
    sys.exit(main())
