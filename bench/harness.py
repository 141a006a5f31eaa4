"""The benchmarks' common stand-up (bench/sync_throughput.py, agent_status.py, campaign.py;
latency.py takes its portal rows from here too).

A throwaway PostgreSQL database (created, migrated, dropped at the end), the app's production-like
environment pointed at the in-process sandbox, a Celery worker that serves both lanes (the
background queue and `<it>.interactive`, integration/core/lanes.py: beat's `jobs_dispatch` and
every interactive kind go to the second) and beat as subprocesses, and a portal row wired to
the sandbox portal. Each benchmark keeps only what it measures.

Environment read here: BENCH_PG (server URL, default postgres://postgres@127.0.0.1:5432),
BENCH_REDIS_URL (Redis for budgets and the broker, default redis://127.0.0.1:6379/12).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PY = sys.executable
BIN = Path(PY).parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def log(message: str) -> None:
    print(message, flush=True)


def psql(database: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named `<prefix>_<random>`, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    psql("postgres", f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # best effort before dropping the database
            pass
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_env(
    handle: Any, *, database: str, queue: str, tmp: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The app processes' environment (production-like: no env file, debug off, Redis broker
    and budgets), also applied to this process so that `migrate()`'s django.setup() reads it."""
    from cryptography.fernet import Fernet

    from tests.support.world import sandbox_env

    env = {
        **os.environ,
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"{PG}/{database}",
        "DATABASE_CONN_MAX_AGE": "60",
        "REDIS_URL": REDIS,
        "CELERY_BROKER_URL": REDIS,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp / "beat-schedule"),
        "JOB_DISPATCH_INTERVAL_S": "1",
        "LOG_LEVEL": "WARNING",
        "APP_BASE_URL": "http://127.0.0.1:9",
        "ALLOWED_HOSTS": "127.0.0.1",
        **(extra or {}),
        **sandbox_env(handle),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    return env


def migrate(env: dict[str, str]) -> None:
    """Migrate the database of `env`, then set Django up in this process on it."""
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()


def worker_argv(queue: str, *, concurrency: int) -> list[str]:
    """A Celery worker for both lanes (as tests/support/processes.celery_worker)."""
    return [str(BIN / "celery"), "-A", "bitrixapp", "worker", "--loglevel", "WARNING",
            "--queues", f"{queue},{queue}.interactive", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip


def beat_argv() -> list[str]:
    return [str(BIN / "celery"), "-A", "bitrixapp", "beat", "--loglevel", "WARNING"]


@contextmanager
def processes(argvs: Sequence[list[str]], *, env: dict[str, str], log: Path) -> Iterator[None]:
    """Run `argvs` as subprocesses (output to `log`) for the block; terminate them after."""
    procs: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as out:
        try:
            for argv in argvs:
                procs.append(
                    subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
            yield
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def portal_seed(
    handle: Any, *, users: list[dict[str, str]] | None = None, api_key: str = "SandboxKey01"
) -> Any:
    """A sandbox portal (with `users`, else the sandbox's own) and its installed app row: no
    leads for unknown numbers, no recordings on Drive, default user 1, Unitalk key connected."""
    import requests
    from django.utils import timezone

    from bitrixapp.celery import app as celery_app
    from bitrixapp.models import Portal, portal_options
    from integration.unitalk import services as unitalk_services

    celery_app.conf.task_default_queue = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
    body = {"users": users} if users is not None else {}
    creds = requests.post(f"{handle.bitrix_url}/_sandbox/portals", json=body, timeout=30).json()
    portal = Portal.objects.create(
        member_id=creds["member_id"],
        domain=creds["domain"],
        client_endpoint=creds["client_endpoint"],
        server_endpoint=creds["server_endpoint"],
        access_token=creds["access_token"],
        refresh_token=creds["refresh_token"],
        access_expires_at=timezone.now() + timedelta(hours=1),
        application_token=creds.get("application_token", ""),
        status=Portal.Status.ACTIVE,
        installed_by_user_id=1,
    )
    options = portal_options(portal)
    options.create_leads = False  # unknown numbers stay unknown: no per-call timeline comment
    options.recordings_to_drive = False
    options.default_user_id = 1
    options.save()
    unitalk_services.connection_create(portal=portal, api_key=api_key)
    return portal
