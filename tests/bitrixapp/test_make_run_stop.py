"""Ctrl-C on `make run` stops every process within honcho's 5 s (issue 21 item 13).

The worker line comes from bin/procfile-dev (what `make run` starts), pointed at a private
queue; a task is mid-run when the terminal's SIGINT reaches the process group. Without the
cold-shutdown remap the worker's warm shutdown would wait for the task and honcho would
SIGKILL it after 5 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from bitrixapp.celery import app
from tests.support.processes import BIN, ROOT, running
from tests.support.waiting import wait_until


def dev_worker_line(queue: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "procfile-dev")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BITRIX24_CLIENT_ID": "real.app"},  # no sandbox line
    ).stdout
    worker = next(line for line in out.splitlines() if line.startswith("worker:"))
    return f"{worker} --queues {queue} --include tests.support.worker_tasks --without-heartbeat"


def test_ctrl_c_stops_a_busy_worker_before_honcho_would_kill_it(tmp_path):
    # given: honcho running the dev worker, which is in the middle of a 30 s task
    queue = f"test-{uuid.uuid4().hex[:8]}"
    procfile = tmp_path / "Procfile"
    procfile.write_text(dev_worker_line(queue) + "\n")
    journal = tmp_path / "journal.txt"
    log = tmp_path / "honcho.log"
    env = {"PATH": f"{BIN}:{os.environ['PATH']}"}
    argv = [str(BIN / "honcho"), "-f", str(procfile), "-d", str(ROOT), "start"]
    with running(argv, env=env, log=log) as honcho:
        wait_until(lambda: "ready" in log.read_text(), timeout=60, message="the worker")
        app.send_task("tests.busy", args=[str(journal), 30], queue=queue)
        wait_until(journal.exists, timeout=30, message="the task to start")
        # when: Ctrl-C (the terminal signals the whole foreground process group)
        started = time.monotonic()
        os.killpg(honcho.pid, signal.SIGINT)
        rc = honcho.wait(timeout=20)
        elapsed = time.monotonic() - started
    print(f"honcho stopped {elapsed:.2f} s after Ctrl-C")  # the figure for docs/the report
    # then: everything stopped on its own, in time, and the task was cut short, not awaited
    text = log.read_text()
    assert elapsed < 5.0, text[-2000:]
    assert "SIGKILL" not in text
    assert rc == 130  # honcho's answer to Ctrl-C; the Makefile treats it as a clean stop
    assert "finished" not in journal.read_text()
