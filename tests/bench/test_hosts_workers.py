"""The workers bench/hosts.py starts consume every queue the app sends to: each is the
Procfile's `worker` command for both lanes (clicks, webhooks, the install and beat's dispatch
go to the interactive lane; without a consumer for it a run waits at the install)."""

from __future__ import annotations

import re
import subprocess

from bench.hosts_run import procfile, worker_command
from integration.core import lanes


def _queues(command: str, *, default_queue: str) -> set[str]:
    """The queues of a worker command as the shell expands them for `default_queue`."""
    value = re.search(r"--queues (\S+)", command).group(1)
    shown = subprocess.run(
        ["sh", "-c", f'printf %s "{value}"'],
        env={"CELERY_TASK_DEFAULT_QUEUE": default_queue},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(shown.split(","))


def test_a_harness_worker_consumes_every_lane_and_every_queue_beat_sends_to(settings):
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    beat_sends_to = {
        entry["options"]["queue"]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if "queue" in entry.get("options", {})
    }

    consumed = _queues(worker_command("b1"), default_queue=default)

    assert consumed == {lanes.queue_name(lane, default_queue=default) for lane in lanes.LANES}
    assert beat_sends_to
    assert beat_sends_to <= consumed


def test_a_harness_worker_is_the_procfiles_two_worker_commands_in_one_node():
    commands = procfile()
    background = re.search(r"--queues (\S+)", commands["worker"]).group(1)
    both = f"--queues {background},{background}.interactive"

    command = worker_command("a1")

    assert _queues(command, default_queue="q") == _queues(
        commands["worker"], default_queue="q"
    ) | _queues(commands["worker-interactive"], default_queue="q")
    assert command == (
        commands["worker"].replace(f"--queues {background}", both)
        + " --hostname a1@%h --include bench.hosts_probe"
    )
