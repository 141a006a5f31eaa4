import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_production_without_secret_key_exits_naming_the_variable(tmp_path):
    result = _run_manage_check(tmp_path, {"FIELD_ENCRYPTION_KEY": "x" * 43 + "="})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_without_encryption_key_exits_naming_the_variable(tmp_path):
    result = _run_manage_check(tmp_path, {"DJANGO_SECRET_KEY": "s" * 50})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY" in result.stderr


def test_production_with_its_secrets_starts(tmp_path):
    key = "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1zZWNyZXQhISE="
    result = _run_manage_check(
        tmp_path, {"DJANGO_SECRET_KEY": "s" * 50, "FIELD_ENCRYPTION_KEY": key}
    )
    assert result.returncode == 0, result.stderr


def _run_manage_check(tmp_path, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_ENCRYPTION"))}
    env.update({"DJANGO_DEBUG": "false", "DJANGO_ENV_FILE": str(tmp_path / "absent.env"), **extra})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
