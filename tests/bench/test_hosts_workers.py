"""The workers bench/hosts.py starts consume every queue the app sends to: each is the
Procfile's `worker` command for both lanes (clicks, webhooks, the install and beat's dispatch
go to the interactive lane; without a consumer for it a run waits at the install), and the
RabbitMQ vhost a run uses is made when the machine's RabbitMQ has none."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from bench.hosts_run import VHOST, procfile, vhost_ensure, worker_command
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


@pytest.fixture
def rabbitmqctl(tmp_path, monkeypatch):
    """A stand-in rabbitmqctl on PATH that lists `vhosts` and records every call."""
    calls = tmp_path / "calls"

    def install(vhosts: str) -> Path:
        script = tmp_path / "rabbitmqctl"
        script.write_text(
            "#!/bin/sh\n"
            f'echo "$*" >> {calls}\n'
            f'[ "$2" = list_vhosts ] && printf "{vhosts}"\n'
            "exit 0\n"
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        return calls

    return install


def test_a_missing_vhost_is_created_and_opened_to_guest(rabbitmqctl):
    calls = rabbitmqctl("/\\n")

    vhost_ensure()

    assert calls.read_text().splitlines() == [
        "-s list_vhosts name",
        f"-s add_vhost {VHOST}",
        f"-s set_permissions -p {VHOST} guest .* .* .*",
    ]


def test_an_existing_vhost_is_kept(rabbitmqctl):
    calls = rabbitmqctl(f"/\\n{VHOST}\\n")

    vhost_ensure()

    assert "add_vhost" not in calls.read_text()
