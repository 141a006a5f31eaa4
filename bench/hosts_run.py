"""One broker's run of bench/hosts.py (see its docstring): set up, drive, cut, measure, clean up.

Runs in its own process (one per broker: Django's settings are read once per process). Whatever
happens (an error, SIGTERM/SIGINT/SIGHUP, the deadline as SIGALRM) `Run.cleanup` removes what
the run made: app processes, forwarders, namespaces and veths, the sandbox, the database, the
run's broker queue and Redis dbs; leftovers of an earlier crashed run are removed first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import hosts_probe, netns
from bench.netns import HOSTS, SERVICE_ADDRESS, Forwarder, Host
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST_A, HOST_B = HOSTS
WEB_PORT = 8000
WEB_URL = f"http://{HOST_A.address}:{WEB_PORT}"
# Both are flushed before and after a run: the benchmarks' numbers, not ones tests or helpers use.
REDIS_DB = int(os.environ.get("HOSTS_REDIS_DB", "10"))
REDIS_BROKER_DB = int(os.environ.get("HOSTS_BROKER_DB", "11"))
VHOST = "hosts"

CALLS = int(os.environ.get("HOSTS_CALLS", "500"))
LOAD_INTERVAL_S = float(os.environ.get("HOSTS_LOAD_INTERVAL_S", "2.0"))
DUPLICATE_RATE = float(os.environ.get("HOSTS_DUPLICATE_RATE", "0.3"))
JOB_LEASE_S = int(os.environ.get("HOSTS_JOB_LEASE_S", "10"))
KEEP_DB = os.environ.get("HOSTS_KEEP_DB") == "1"
LINK_DOWN_BEFORE_KILL_S = 2.0
AFTER_RESTORE_LOAD_S = 10.0

# Short enough for a run of minutes, consistent with each other. The job lease is production's
# (JOB_LEASE_S, 10 s): a running attempt renews it (integration/lease.py), so the task time
# limits keep their defaults. A drain claim (120 s in production) is shortened to 20 s so a run
# of minutes sees host b's claimed calls come back; it still outlives any single request
# including its rate-limit wait (docs/deploy.md, "Losing a host").
TIMINGS = {
    "JOB_LEASE_S": str(JOB_LEASE_S),
    "CALL_DRAIN_CLAIM_S": "20",
    "JOB_REDISPATCH_AFTER_S": "20",
    "JOB_DISPATCH_INTERVAL_S": "1",
    "JOB_BACKOFF_BASE_S": "0.5",
    "JOB_BACKOFF_CAP_S": "4",
    "HTTP_CONNECT_TIMEOUT": "2",
    "HTTP_READ_TIMEOUT": "5",
    "BITRIX24_RATE_MAX_WAIT_S": "5",
    "UNITALK_RATE_MAX_WAIT_S": "5",
}


class Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT/SIGHUP or the deadline (SIGALRM)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def broker_url(broker: str, address: str) -> str:
    if broker == "rabbitmq":
        return f"amqp://guest:guest@{address}:5672/{VHOST}"
    return f"redis://{address}:6379/{REDIS_BROKER_DB}"


def procfile() -> dict[str, str]:
    """The Procfile's commands by process type: the harness runs exactly these."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def worker_command(worker: str) -> str:
    """The Procfile's `worker` command for both lanes, as the Celery node `<worker>@<host>`.

    The Procfile runs a lane per worker (`worker`: background, `worker-interactive`: clicks,
    webhooks, install, beat's dispatch; docs/pipeline.md, "Lanes"); a small deployment may run
    one worker for both (docs/operations.md, "Processes"). Each worker of the harness is one
    such node, so that "one worker in host a, two in host b" stays three nodes and nothing
    waits on a queue no host consumes. Two workers on one machine need their own node names
    (both would be celery@<host>).
    """
    commands = procfile()
    lanes = [_queues_of(commands[kind]) for kind in ("worker", "worker-interactive")]
    command = commands["worker"].replace(f"--queues {lanes[0]}", f"--queues {','.join(lanes)}")
    return f"{command} --hostname {worker}@%h --include bench.hosts_probe"


def _queues_of(command: str) -> str:
    found = re.search(r"--queues (\S+)", command)
    if found is None:
        raise ValueError(f"no --queues in the Procfile command {command!r}")
    return found.group(1)


def vhost_ensure() -> None:
    """The run's RabbitMQ vhost, open to guest: a fresh RabbitMQ has only "/" (and the run keeps
    its queues, exchanges and remote-control traffic off a vhost other users share)."""

    def rabbitmqctl(*args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-s", *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    if VHOST not in rabbitmqctl("list_vhosts", "name").split():
        rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")


@dataclass
class Proc:
    name: str
    host: Host
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float


class Run:
    def __init__(self, broker: str, deadline_at: float) -> None:
        self.broker = broker
        self.deadline_at = deadline_at
        self.database = f"app_hosts_{broker}"
        self.queue = f"hosts-{broker}"
        self.tmp = netns.STATE_DIR / broker
        self.procs: dict[str, Proc] = {}
        self.forwarders = {h.name: Forwarder(h.name, h.gateway) for h in HOSTS}
        self.sandbox: Any = None
        self.rest: Counter[int] = Counter()
        self.secrets = {"DJANGO_SECRET_KEY": uuid.uuid4().hex * 2, "FIELD_ENCRYPTION_KEY": ""}
        self.forwarder_cpu_s = 0.0  # of forwarders already gone (host b's, cut)
        self.cleaned = False
        self.started = time.monotonic()

    # --- environment -----------------------------------------------------------------------

    def env(self, address: str, *, worker: str = "") -> dict[str, str]:
        """Everything an app process needs; identical on every host except the addresses."""
        from tests.support.world import sandbox_env

        return {
            **os.environ,
            "DJANGO_ENV_FILE": "",  # production-like: no env file, debug off
            "DJANGO_DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
            **self.secrets,
            "DATABASE_URL": f"postgres://postgres@{address}:5432/{self.database}",
            "DATABASE_CONN_MAX_AGE": "60",
            "REDIS_URL": f"redis://{address}:6379/{REDIS_DB}",
            "CELERY_BROKER_URL": broker_url(self.broker, address),
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "CELERY_BEAT_SCHEDULE_FILENAME": str(self.tmp / "beat-schedule"),
            "APP_BASE_URL": WEB_URL,
            **sandbox_env(self.sandbox),
            **TIMINGS,
            "LOG_LEVEL": "WARNING",
            # the Procfile's variables
            "HOST": HOST_A.address,
            "PORT": str(WEB_PORT),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "4",
            "CELERY_CONCURRENCY": "2",
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "HOSTS_PROBE_FILE": str(self.tmp / f"probe-{worker}.log") if worker else "",
            "HOSTS_WORKER": worker,
        }

    # --- processes -------------------------------------------------------------------------

    def start(self, name: str, host: Host, kind: str, *, worker: str = "") -> Proc:
        command = worker_command(worker) if kind == "worker" else procfile()[kind]
        log_path = self.tmp / f"{name}.log"
        started_at = time.time()
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                host.exec_argv(["sh", "-c", f"exec {command}" if "&&" not in command else command]),
                cwd=ROOT,
                env=self.env(host.gateway, worker=worker),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=host.enter,
            )
        proc = self.procs[name] = Proc(name, host, popen, log_path, started_at)
        return proc

    def release(self) -> None:
        proc = self.start("release", HOST_A, "release")
        if proc.popen.wait(timeout=300) != 0:
            raise RuntimeError(f"release failed:\n{proc.log.read_text()[-3000:]}")

    def wait_ready(self, *names: str) -> None:
        for name in names:
            proc = self.procs[name]

            def ready(proc: Proc = proc) -> bool:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited:\n{proc.log.read_text()[-3000:]}")
                if proc.name == "web":
                    with contextlib.suppress(requests.RequestException):
                        return requests.get(f"{WEB_URL}/healthz", timeout=2).status_code == 200
                    return False
                if proc.name == "beat":
                    return any(self.tmp.glob("beat-schedule*"))
                # A restarted worker appends to the same probe file: its own "ready" is newer.
                rows = hosts_probe.read(self.tmp / f"probe-{proc.name}.log")
                return any(r[2] == "ready" and r[0] >= proc.started_at for r in rows)

            wait_until(ready, timeout=90, interval=0.5, message=f"{name} to be ready")

    def kill_host(self, host: Host) -> float:
        """SIGKILL every process of the host (its process groups, then anything else left in
        its namespace). Returns the time of the kill."""
        killed_at = time.time()
        for proc in self.procs.values():
            if proc.host == host and proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
        netns.kill_netns_processes(host.netns)
        for proc in self.procs.values():
            if proc.host == host:
                proc.popen.wait(timeout=10)
        return killed_at

    def stop_all(self) -> None:
        running = [p for p in self.procs.values() if p.popen.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in running:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
        for host in HOSTS:
            netns.kill_netns_processes(host.netns)

    # --- set-up and clean-up ---------------------------------------------------------------

    def leftovers_remove(self) -> None:
        for item in netns.cleanup():
            log(f"removed leftover {item}")
        self.stores_reset()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def stores_reset(self) -> None:
        """Drop this run's database, empty our Redis dbs and the run's queue (all ours)."""
        import psycopg
        import redis

        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        for number in (REDIS_DB, REDIS_BROKER_DB):
            redis.Redis(host="127.0.0.1", port=6379, db=number).flushdb()
        if self.broker == "rabbitmq":
            from kombu import Connection

            # A missing queue (first run) is nothing to delete.
            with (
                Connection(broker_url("rabbitmq", "127.0.0.1")) as conn,
                contextlib.suppress(Exception),
            ):
                conn.default_channel.queue_delete(self.queue)

    def setup(self) -> None:
        from cryptography.fernet import Fernet

        from sandbox import server as sandbox_server

        if self.broker == "rabbitmq":
            vhost_ensure()
        self.leftovers_remove()
        netns.up()
        log(
            "hosts: "
            + ", ".join(f"{h.name} {h.address} on CPU {sorted(h.cpus) or 'any'}" for h in HOSTS)
            + f"; services through forwarders, sandbox on {SERVICE_ADDRESS}"
        )
        for forwarder in self.forwarders.values():
            forwarder.start()
        self.sandbox = sandbox_server.start(app_url=WEB_URL, state_path=None, host=SERVICE_ADDRESS)
        self._count_rest()
        self.secrets["FIELD_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
        # This process is the operator on the host: it reaches the services directly.
        os.environ.update({k: v for k, v in self.env("127.0.0.1").items() if k != "PATH"})
        import psycopg

        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{self.database}"')
        import django

        django.setup()

    def _count_rest(self) -> None:
        # Every REST answer of the portal, counted here: the sandbox's own log keeps only the
        # last 1000 requests of all servers.
        store = self.sandbox.world.store
        original = store.log

        def counting(entry: dict[str, Any]) -> None:
            if entry.get("server") == "bitrix" and str(entry.get("path", "")).startswith("/rest/"):
                self.rest[int(entry["status"])] += 1
            original(entry)

        store.log = counting

    def cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        steps = [
            ("processes", self.stop_all),
            ("forwarders", lambda: [f.kill() for f in self.forwarders.values()]),
            ("network", netns.cleanup),
            ("sandbox", lambda: self.sandbox and self.sandbox.stop()),
            ("database connections", _close_django),
            ("database, Redis dbs, queue", self.stores_reset),
        ]
        if KEEP_DB:  # for a look afterwards; the next run drops it first anyway
            steps.pop()
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning: every step is independent
                log(f"cleanup of {name} failed: {type(exc).__name__}: {exc}")
        log(f"cleaned up (logs kept in {self.tmp})")


def _close_django() -> None:
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()


def run(broker: str, *, deadline_at: float) -> int:
    from bench.hosts_drive import drive

    runner = Run(broker, deadline_at)

    def stop(signum: int, _frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, stop)
    signal.alarm(max(1, int(deadline_at - time.time())))
    atexit.register(runner.cleanup)
    try:
        runner.setup()
        line = drive(runner)
    except Stop as exc:
        log(f"stopped by {exc} after {time.monotonic() - runner.started:.0f} s")
        print(f"hosts: broker={broker} STOPPED ({exc})", flush=True)
        return 1
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        print(f"hosts: broker={broker} FAILED ({type(exc).__name__})", flush=True)
        raise
    finally:
        runner.cleanup()
    print(line, flush=True)
    return 0
