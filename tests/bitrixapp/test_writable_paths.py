"""Every path the app writes comes from the environment: the code tree can be read-only.

The processes run as root here, so file modes cannot make the copy read-only; instead the test
records every file and folder of the copy before the run and asserts that none appeared or
changed (a write on a read-only tree would have failed at the same place).
"""

import json
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from tests.support.codetree import (
    SECRETS,
    code_copy,
    manage,
    production_env,
    run_python,
    tree_state,
)
from tests.support.processes import running
from tests.support.stack import free_port
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent

RESOLVED = """
import django, json
django.setup()
from django.conf import settings
from sandbox import server
opts = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
print(json.dumps({
    "var": str(settings.VAR_DIR),
    "static_root": str(settings.STATIC_ROOT),
    "beat_schedule": settings.CELERY_BEAT_SCHEDULE_FILENAME,
    "database": str(settings.DATABASES["default"]["NAME"]),
    "test_database": settings.DATABASES["default"]["TEST"]["NAME"],
    "cache": settings.CACHES["default"]["LOCATION"],
    "ratelimit": str(settings.RATELIMIT_DIR),
    "broker_in": opts["data_folder_in"],
    "broker_control": opts["control_folder"],
    "sandbox_state": str(server.state_path_default()),
}))
"""


def test_every_writable_path_resolves_under_the_folders_the_environment_names(tmp_path):
    code = code_copy(tmp_path / "code")
    var, static = tmp_path / "state", tmp_path / "static"
    env = production_env(code, APP_VAR_DIR=str(var), DJANGO_STATIC_ROOT=str(static), **SECRETS)
    result = run_python(code, RESOLVED, env)
    assert result.returncode == 0, result.stderr
    paths = {name: Path(value) for name, value in json.loads(result.stdout).items()}
    assert paths.pop("static_root") == static
    assert paths["var"] == var
    assert paths["database"] == var / "db.sqlite3"
    assert paths["beat_schedule"] == var / "celerybeat-schedule"
    outside = {name: str(path) for name, path in paths.items() if not path.is_relative_to(var)}
    assert outside == {}


def test_without_the_variables_development_keeps_its_folders_in_the_code_tree(tmp_path):
    code = code_copy(tmp_path / "code")
    env = production_env(code, **SECRETS)
    result = run_python(code, RESOLVED, env)
    assert result.returncode == 0, result.stderr
    paths = json.loads(result.stdout)
    assert paths["var"] == str(code / "var")
    assert paths["static_root"] == str(code / "staticfiles")
    assert paths["database"] == str(code / "db.sqlite3")
    assert paths["beat_schedule"] == str(code / "var" / "celerybeat-schedule")


@pytest.mark.e2e
def test_a_production_run_writes_nothing_into_the_code_tree(tmp_path):
    # Given a copy of the code, its state recorded, and every writable path pointed outside it
    code = code_copy(tmp_path / "code")
    var, static = tmp_path / "state", tmp_path / "static"
    before = tree_state(code)
    env = production_env(
        code,
        APP_VAR_DIR=str(var),
        DJANGO_STATIC_ROOT=str(static),
        CELERY_TASK_DEFAULT_QUEUE=f"ro-{uuid.uuid4().hex[:8]}",
        JOB_DISPATCH_INTERVAL_S="1",
        PYTHONUNBUFFERED="1",
        # Celery's per-task "succeeded" lines, seen below, are DEBUG (integration/core/log.py, Routine).
        LOG_LEVEL="DEBUG",
        **SECRETS,
    )

    # When the release step, web, worker and beat run on the embedded defaults (SQLite, the
    # filesystem broker, file-based cache and rate limits: the paths that write the most)
    for step in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
        result = manage(code, *step, env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    web = [str(BIN / "gunicorn"), "bitrixapp.wsgi", "-c", "gunicorn.conf.py", "--workers", "1"]
    web += ["--bind", f"127.0.0.1:{port}"]
    worker = [str(BIN / "celery"), "-A", "bitrixapp", "worker", "--concurrency", "1"]
    worker += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    worker += ["--queues", env["CELERY_TASK_DEFAULT_QUEUE"]]
    beat = [str(BIN / "celery"), "-A", "bitrixapp", "beat", "--loglevel", "INFO"]
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "beat")}
    argvs = {"web": web, "worker": worker, "beat": beat}
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                running(argv, env=env, log=logs[name], cwd=code, inherit=False)
            )
            for name, argv in argvs.items()
        }

        def alive_and(check):
            def probe():
                for name, proc in procs.items():
                    assert proc.poll() is None, f"{name} exited:\n{logs[name].read_text()[-3000:]}"
                return check()

            return probe

        wait_until(alive_and(lambda: _ok(f"http://127.0.0.1:{port}/healthz")), timeout=60)
        # beat hands jobs_dispatch to the worker through the broker folder once a second
        wait_until(
            alive_and(
                lambda: "integration.jobs_dispatch" in _messages(logs["worker"], "succeeded")
            ),
            timeout=60,
            message="the worker to run a task sent by beat",
        )
        result = manage(code, "shell", "-c", _RATE_LIMIT_AND_CACHE, env=env)
        assert result.returncode == 0, result.stderr

    # Then the code tree is exactly as it was, and the state is where the environment said
    assert tree_state(code) == before
    assert (var / "db.sqlite3").is_file()
    assert (var / "broker" / "queue").is_dir()
    assert list(var.glob("celerybeat-schedule*"))
    assert list((var / "ratelimit").glob("*.json"))
    assert list((var / "cache").iterdir())
    assert (static / "staticfiles.json").is_file()
    # and each process said where its settings came from
    for role in ("web", "worker", "beat"):
        said = _messages(logs[role], "settings from")
        assert f"{role}: settings from environment only" in said, logs[role].read_text()[-2000:]


_RATE_LIMIT_AND_CACHE = (
    "from django.core.cache import cache; from integration.core import ratelimit; "
    "cache.set('ro-check', 1); ratelimit.acquire('ro-check', burst=1, per_second=1.0)"
)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _messages(log: Path, containing: str) -> str:
    """Messages of the JSON lines in `log` that contain `containing`, one per line."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if containing in line and line.startswith("{"):
            found.append(json.loads(line)["message"])
    return "\n".join(found)
