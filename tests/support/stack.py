"""The app as separate processes (gunicorn, Celery worker, beat) against the test database.

End-to-end tests use this to exercise what production runs: real HTTP into gunicorn, real
broker hand-offs, a real worker executing jobs, beat dispatching due work. Each stack gets its
own queue name and beat schedule file, so it never collides with another stack or `make run`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

from bitrixapp.celery import app as celery_app
from tests.support.processes import BIN, ROOT, celery_worker, procfile_command, running
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """URL of the database this test process uses (the test database once it exists)."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def app_stack(
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    web: bool = True,
    worker: bool = True,
    beat: bool = True,
    concurrency: int = 2,
    include: tuple[str, ...] = (),
    procfile_lanes: bool = False,
) -> Iterator[Stack]:
    """Start the chosen app processes; the test process publishes to the same queue.

    `procfile_lanes`: the lanes as production runs them, the background worker plus the
    Procfile's `worker-interactive` line (its own pool) as "worker-interactive"; otherwise one
    worker serves both lanes."""
    port = free_port()
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    base_url = f"http://127.0.0.1:{port}"
    full_env = {
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": database_url(),
        "APP_BASE_URL": base_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_BEAT_SCHEDULE_FILENAME": str(tmp_path / "beat-schedule"),
        "JOB_DISPATCH_INTERVAL_S": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    stack = Stack(base_url=base_url, env=full_env, logs=tmp_path)
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    # Keep the web/worker processes from holding the test database open after the test.
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
    try:
        with ExitStack() as stack_ctx:
            if web:
                # Production's config file (JSON logs, redacted access log), this stack's port.
                argv = [
                    str(BIN / "gunicorn"),
                    "bitrixapp.wsgi",
                    "--config",
                    str(ROOT / "gunicorn.conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "30",
                ]
                stack.procs["web"] = stack_ctx.enter_context(
                    running(argv, env=full_env, log=tmp_path / "web.log")
                )
            if worker:
                argv = celery_worker(
                    queue, include=include, concurrency=concurrency, both_lanes=not procfile_lanes
                )
                stack.procs["worker"] = stack_ctx.enter_context(
                    running(argv, env=full_env, log=tmp_path / "worker.log")
                )
            if worker and procfile_lanes:
                stack.procs["worker-interactive"] = stack_ctx.enter_context(
                    running(
                        procfile_command("worker-interactive"),
                        # honcho's way: the venv's bin first on PATH (Makefile, `make run`)
                        env={
                            "LOG_LEVEL": "INFO",
                            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                            **full_env,
                        },
                        log=tmp_path / "worker-interactive.log",
                    )
                )
            if beat:
                argv = [str(BIN / "celery"), "-A", "bitrixapp", "beat", "--loglevel", "INFO"]
                stack.procs["beat"] = stack_ctx.enter_context(
                    running(argv, env=full_env, log=tmp_path / "beat.log")
                )
            _wait_ready(stack)
            yield stack
    finally:
        celery_app.conf.task_default_queue = previous_queue


def _wait_ready(stack: Stack) -> None:
    def up(name: str, marker: str) -> bool:
        proc = stack.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{stack.log(name)[-3000:]}")
        return marker in stack.log(name)

    if "web" in stack.procs:
        wait_until(lambda: up("web", "Booting worker"), timeout=60, message="gunicorn")
        wait_until(
            lambda: _http_ok(stack.base_url + "/healthz"),
            timeout=60,
            message="gunicorn to answer /healthz",
        )
    for name in ("worker", "worker-interactive"):
        if name in stack.procs:
            wait_until(lambda name=name: up(name, "ready."), timeout=60, message=f"celery {name}")
    if "beat" in stack.procs:
        wait_until(lambda: up("beat", "beat: Starting"), timeout=60, message="celery beat")


def _http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


__all__ = ["ROOT", "Stack", "app_stack", "database_url", "free_port"]
