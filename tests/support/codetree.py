"""A copy of the code tree, run the way production runs it (settings from the environment only).

Tests that must put files into "the code folder" (a stray .env) or prove that nothing writes
into it work on a copy: the developer's own checkout has its .env and var/ in use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

#: A copy of the code tree: the packages and the files beside them that the settings point at. The
#: sandbox is in the copy for the development-settings tests; a deployment leaves it out.
SHIPPED = ("bitrixapp", "integration", "sandbox", "templates", "static", "locale")
SHIPPED_FILES = ("manage.py", "gunicorn.conf.py", "Procfile", "pyproject.toml")

FERNET_KEY = "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1zZWNyZXQhISE="
SECRETS = {"DJANGO_SECRET_KEY": "p" * 50, "FIELD_ENCRYPTION_KEY": FERNET_KEY}


def code_copy(dest: Path) -> Path:
    """Copy the shipped tree to `dest` (no caches, no .env, no var/) and return it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in SHIPPED_FILES:
        shutil.copy2(ROOT / name, dest / name)
    return dest


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root` with its size and modification time."""
    state = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        state[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return state


def production_env(code: Path, **extra: str) -> dict[str, str]:
    """The test's environment minus every app setting: debug off, imports from `code`."""
    app_prefixes = (
        "DJANGO_",
        "FIELD_ENCRYPTION",
        "APP_",
        "DATABASE_",
        "REDIS_",
        "CELERY_",
        "SANDBOX_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(app_prefixes)}
    env.update(
        {
            "PYTHONPATH": str(code),
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": "bitrixapp.settings",
            **extra,
        }
    )
    return env


def run_python(code: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -c script` in the copy, as its working directory."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(code: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(code / "manage.py"), *args],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
