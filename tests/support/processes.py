"""Start real app processes (Celery worker, gunicorn) for tests and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@contextmanager
def running(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path = ROOT,
    inherit: bool = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own group for the duration of the block; kill the group after.

    `env` is added to this process's environment, or is the whole of it with `inherit=False`.
    """
    full_env = {**os.environ, **(env or {})} if inherit else dict(env or {})
    out = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=full_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def celery_worker(queue: str, *, include: Sequence[str] = (), concurrency: int = 1) -> list[str]:
    argv = [
        str(BIN / "celery"),
        "-A",
        "bitrixapp",
        "worker",
        "--loglevel",
        "INFO",
        "--queues",
        f"{queue},{queue}.interactive",  # both lanes (integration/core/lanes.py)
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    for module in include:
        argv += ["--include", module]
    return argv
