"""The systemd units: verified by systemd itself, hardened, and running what the Procfile runs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.units import (
    PROCESSES,
    UNITS,
    environment,
    procfile,
    unit,
    values,
    without_defaults,
)
from tests.support.processes import ROOT

VENV_BIN = Path(sys.executable).parent
SERVICES = [f"unitalk-app-{name}.service" for name in ("release", *PROCESSES)]


def _installed_here(dest: Path) -> list[Path]:
    """The units as installed on this machine: /opt/unitalk-app is this checkout and its venv."""
    dest.mkdir()
    copies = []
    for source in sorted(UNITS.iterdir()):
        text = source.read_text()
        text = text.replace("/opt/unitalk-app/.venv/bin/", f"{VENV_BIN}/")
        text = text.replace("/opt/unitalk-app", str(ROOT))
        (dest / source.name).write_text(text)
        copies.append(dest / source.name)
    return copies


def _verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    return subprocess.run(
        [analyze, "verify", "--man=no", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=paths[0].parent,
    )


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path):
    copies = _installed_here(tmp_path / "units")
    assert {p.name for p in copies} >= {*SERVICES, "unitalk-app.target"}
    result = _verify(copies)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_systemd_analyze_verify_reports_a_broken_unit_here(tmp_path):
    # The check above means something only if verify finds faults on this machine.
    copies = _installed_here(tmp_path / "units")
    web = tmp_path / "units" / "unitalk-app-web.service"
    web.write_text(web.read_text().replace("Type=notify", "Type=notifyy\nRestartz=always"))
    result = _verify(copies)
    assert "notifyy" in result.stderr
    assert "Restartz" in result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_unprivileged_hardened_and_configured_from_one_file(name):
    service = dict(unit(name)["Service"])
    assert service["User"] not in ("", "root", "0")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["EnvironmentFile"] == "/etc/unitalk-app/app.env"
    # Writable: exactly the folders the environment points the app at.
    env = environment(name)
    writable = values(name, "Service", "ReadWritePaths")
    assert writable == [env["APP_VAR_DIR"]]
    assert Path(env["DJANGO_STATIC_ROOT"]).is_relative_to(env["APP_VAR_DIR"])
    assert Path("/var/lib", service["StateDirectory"]) == Path(env["APP_VAR_DIR"])
    assert env["PYTHONPATH"] == service["WorkingDirectory"]


@pytest.mark.parametrize("name", PROCESSES)
def test_long_running_services_restart_and_wait_for_the_release_step(name):
    service_unit = unit(f"unitalk-app-{name}.service")
    service = dict(service_unit["Service"])
    assert service["Restart"] == "always"
    after = " ".join(values(f"unitalk-app-{name}.service", "Unit", "After")).split()
    requires = " ".join(values(f"unitalk-app-{name}.service", "Unit", "Requires")).split()
    assert "unitalk-app-release.service" in after
    assert "unitalk-app-release.service" in requires


def test_the_release_unit_runs_the_procfile_release_commands():
    release = [c.strip() for c in procfile()["release"].split("&&")]
    commands = values("unitalk-app-release.service", "Service", "ExecStart")
    prefix = "/opt/unitalk-app/.venv/bin/python /opt/unitalk-app/manage.py"
    assert [c.replace(prefix, "python manage.py") for c in commands] == release
    assert dict(unit("unitalk-app-release.service")["Service"])["Type"] == "oneshot"


@pytest.mark.parametrize("name", ["worker", "worker-interactive", "beat"])
def test_worker_and_beat_run_the_procfile_commands(name):
    (command,) = values(f"unitalk-app-{name}.service", "Service", "ExecStart")
    assert command.replace("/opt/unitalk-app/.venv/bin/", "") == without_defaults(procfile()[name])
    # every ${VAR} the command uses has a default in the unit
    env = environment(f"unitalk-app-{name}.service")
    for var in (
        "LOG_LEVEL",
        "CELERY_CONCURRENCY",
        "CELERY_INTERACTIVE_POOL",
        "CELERY_INTERACTIVE_CONCURRENCY",
        "CELERY_TASK_DEFAULT_QUEUE",
    ):
        assert f"${{{var}}}" not in command or var in env


def test_web_runs_gunicorn_with_the_config_file_and_a_graceful_stop():
    (command,) = values("unitalk-app-web.service", "Service", "ExecStart")
    assert command.split()[:4] == [
        "/opt/unitalk-app/.venv/bin/gunicorn",
        "bitrixapp.wsgi",
        "--config",
        "/opt/unitalk-app/gunicorn.conf.py",
    ]
    assert "gunicorn.conf.py" in procfile()["web"]
    service = dict(unit("unitalk-app-web.service")["Service"])
    assert service["KillMode"] == "mixed"
    # stop timeout above gunicorn's graceful timeout (30 s default in gunicorn.conf.py)
    assert int(service["TimeoutStopSec"]) > 30


def test_worker_stop_timeout_covers_the_hard_task_time_limit(settings):
    service = dict(unit("unitalk-app-worker.service")["Service"])
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > settings.CELERY_TASK_TIME_LIMIT
