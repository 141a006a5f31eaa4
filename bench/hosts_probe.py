"""Loaded into bench/hosts.py's Celery workers (`--include bench.hosts_probe`): which worker took
which job's message, and when. Harness instrumentation only; the app does not know about it.

One line per event, appended to HOSTS_PROBE_FILE with one write(2) (atomic for short lines, and
kept when the worker is SIGKILLed right after):

    <unix time> <worker> <pid> ready|received|start|end <task id> <job id>

`received` is the consumer taking the message from the broker, `start`/`end` the pool process
running it. A message received and never ended by a worker that was killed is work that host held.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import task_postrun, task_prerun, task_received, worker_ready

JOB_TASK = "integration.job_run"


def _note(event: str, task_id: str = "-", job_id: Any = "-") -> None:
    path = os.environ.get("HOSTS_PROBE_FILE")
    if not path:
        return
    worker = os.environ.get("HOSTS_WORKER", "?")
    line = f"{time.time():.3f} {worker} {os.getpid()} {event} {task_id} {job_id}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _job_id(args: Any) -> Any:
    return args[0] if args else "-"


@worker_ready.connect
def _ready(**_: Any) -> None:
    _note("ready")


@task_received.connect
def _received(request: Any = None, **_: Any) -> None:
    if request is not None and request.name == JOB_TASK:
        _note("received", request.id, _job_id(request.args))


@task_prerun.connect
def _start(task_id: str = "-", task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name == JOB_TASK:
        _note("start", task_id, _job_id(args))


@task_postrun.connect
def _end(task_id: str = "-", task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name == JOB_TASK:
        _note("end", task_id, _job_id(args))


def read(path: str | os.PathLike[str]) -> list[tuple[float, str, str, str, str]]:
    """(time, worker, event, task id, job id) per line of a probe file, in file order."""
    rows = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 6:
                    rows.append((float(parts[0]), parts[1], parts[3], parts[4], parts[5]))
    except FileNotFoundError:
        pass
    return rows
