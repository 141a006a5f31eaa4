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


def celery_worker(
    queue: str, *, include: Sequence[str] = (), concurrency: int = 1, both_lanes: bool = True
) -> list[str]:
    argv = [
        str(BIN / "celery"),
        "-A",
        "bitrixapp",
        "worker",
        "--loglevel",
        "INFO",
        "--queues",
        # both lanes (integration/core/lanes.py), or the background lane only
        f"{queue},{queue}.interactive" if both_lanes else queue,
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    for module in include:
        argv += ["--include", module]
    return argv


def procfile_command(name: str) -> list[str]:
    """A Procfile line as honcho runs it (a shell expands its ${VAR:-default})."""
    for raw in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = raw.partition(":")
        if key.strip() == name and command.strip():
            return ["sh", "-c", f"exec {command.strip()}"]
    raise LookupError(f"no {name!r} line in the Procfile")
