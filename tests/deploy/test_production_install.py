"""The image's install, replayed without a container engine: the Dockerfile's files, in a fresh
virtualenv with the package and no test extras, started the way the image starts them."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.deploy.test_dockerfile import instructions
from tests.support.codetree import SECRETS, production_env
from tests.support.processes import ROOT, running
from tests.support.stack import free_port
from tests.support.waiting import wait_until

TEST_ONLY = ("pytest", "responses", "playwright", "ruff", "mypy", "hadolint")


def _image_tree(dest: Path) -> Path:
    """What the Dockerfile's COPY lines put into WORKDIR."""
    dest.mkdir()
    for word, rest in instructions():
        if word != "COPY":
            continue
        *sources, target = shlex.split(rest)
        for source in sources:
            src = ROOT / source
            if src.is_dir():  # COPY bitrixapp ./bitrixapp
                shutil.copytree(src, dest / target, ignore=shutil.ignore_patterns("__pycache__"))
            else:  # COPY manage.py gunicorn.conf.py ./
                into = dest / target / src.name if target.endswith("/") else dest / target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)
    return dest


@pytest.mark.e2e
def test_the_production_install_runs_web_worker_and_beat_without_test_extras(tmp_path):
    # Given the image's files and a virtualenv with only the package's own dependencies
    app = _image_tree(tmp_path / "app")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(app)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True
    ).stdout.lower()
    assert [name for name in TEST_ONLY if re.search(rf"^{name}\b", frozen, re.M)] == []

    # When the build's collectstatic and then the release, web, worker and beat run from it
    var = tmp_path / "var"
    env = production_env(
        app,
        APP_VAR_DIR=str(var),
        DJANGO_STATIC_ROOT=str(app / "staticfiles"),
        CELERY_TASK_DEFAULT_QUEUE=f"prod-{uuid.uuid4().hex[:8]}",
        PYTHONUNBUFFERED="1",
        # Celery's per-task "succeeded" lines, waited for below, are DEBUG (integration/core/log.py).
        LOG_LEVEL="DEBUG",
        **SECRETS,
    )
    python = str(venv / "bin" / "python")
    for step in (["collectstatic", "--noinput"], ["migrate", "--noinput"]):
        done = subprocess.run(
            [python, "manage.py", *step], cwd=app, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    port = free_port()
    argvs = {
        "web": [str(venv / "bin" / "gunicorn"), "bitrixapp.wsgi", "--config", "gunicorn.conf.py"],
        "worker": [str(venv / "bin" / "celery"), "-A", "bitrixapp", "worker", "--concurrency", "1"],
        "beat": [str(venv / "bin" / "celery"), "-A", "bitrixapp", "beat"],
    }
    argvs["worker"] += ["--queues", env["CELERY_TASK_DEFAULT_QUEUE"], "--without-heartbeat"]
    logs = {name: tmp_path / f"{name}.log" for name in argvs}
    web_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                running(
                    argv,
                    env=web_env if name == "web" else env,
                    log=logs[name],
                    cwd=app,
                    inherit=False,
                )
            )
            for name, argv in argvs.items()
        }

        def started() -> bool:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited:\n{logs[name].read_text()[-3000:]}"
            return all("settings from environment only" in logs[n].read_text() for n in procs)

        wait_until(started, timeout=90, message="web, worker and beat to start")
        wait_until(
            lambda: "succeeded" in logs["worker"].read_text(),
            timeout=60,
            message="the worker to run beat's dispatch",
        )
        health = _get(f"http://127.0.0.1:{port}/healthz")
        # and the worker's and beat's heartbeats reach the web process's readiness
        wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/readyz") == 200,
            timeout=60,
            message="readiness with worker and beat heartbeats",
        )

    # Then they served and worked, from the code tree the image has (not site-packages)
    assert health == 200
    where = subprocess.run(
        [
            python,
            "-c",
            "import bitrixapp, integration; print(bitrixapp.__file__, integration.__file__)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert [Path(p).is_relative_to(app) for p in where] == [True, True]
    said = [json.loads(line) for line in logs["web"].read_text().splitlines()]
    assert any(line["logger"] == "gunicorn.access" and line["status"] == 200 for line in said)
    assert (app / "staticfiles" / "staticfiles.json").is_file()


def _get(url: str) -> int:
    import requests

    return requests.get(url, timeout=5).status_code
