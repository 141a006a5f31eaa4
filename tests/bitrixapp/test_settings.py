import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.codetree import SECRETS, code_copy, manage, production_env, run_python

ROOT = Path(__file__).resolve().parents[2]

SHOW = """
import json, bitrixapp
from django.conf import settings
print(json.dumps({"debug": settings.DEBUG, "source": settings.SETTINGS_SOURCE,
                  "package": bitrixapp.__file__}))
"""
DJANGO_SETUP = "import django; django.setup()\n"


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


def test_a_stray_env_file_in_the_code_folder_does_not_supply_production_secrets(tmp_path):
    # Given a leftover development .env in the code folder (also the working directory)
    code = code_copy(tmp_path / "code")
    _stray_dev_env(code)
    # When the app starts with neither DJANGO_DEBUG nor DJANGO_ENV_FILE set
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"))
    result = manage(code, "check", env=env)
    # Then it is production: the .env's secrets were not read, so it refuses to start
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_a_stray_env_file_does_not_turn_debug_on(tmp_path):
    code = code_copy(tmp_path / "code")
    _stray_dev_env(code)
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), **SECRETS)
    result = run_python(code, DJANGO_SETUP + SHOW, env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is False
    assert shown["source"] == "environment only"
    assert Path(shown["package"]).is_relative_to(code)  # the copy ran, not the checkout


def test_the_env_file_named_by_django_env_file_is_read_and_reported(tmp_path):
    code = code_copy(tmp_path / "code")
    named = tmp_path / "app.env"
    named.write_text("DJANGO_DEBUG=true\n")
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), DJANGO_ENV_FILE=str(named))
    result = run_python(code, DJANGO_SETUP + SHOW, env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is True
    assert shown["source"] == f"environment and {named}"


def test_a_missing_env_file_is_a_configuration_error_naming_it(tmp_path):
    code = code_copy(tmp_path / "code")
    missing = tmp_path / "absent.env"
    env = production_env(
        code, APP_VAR_DIR=str(tmp_path / "var"), DJANGO_ENV_FILE=str(missing), **SECRETS
    )
    result = manage(code, "check", env=env)
    assert result.returncode == 2
    assert f"DJANGO_ENV_FILE={missing}" in result.stderr


def test_every_process_says_at_start_up_where_its_settings_came_from(tmp_path):
    code = code_copy(tmp_path / "code")
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), **SECRETS)
    script = "import bitrixapp.wsgi\n"
    result = run_python(code, script, env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    said = [line for line in lines if line["logger"] == "bitrixapp.settings"]
    assert len(said) == 1
    assert said[0]["message"] == "web: settings from environment only"
    assert said[0]["role"] == "web"
    assert said[0]["debug"] is False


def _stray_dev_env(code: Path) -> None:
    (code / ".env").write_text(
        "DJANGO_DEBUG=true\n"
        f"DJANGO_SECRET_KEY={'d' * 50}\n"
        f"FIELD_ENCRYPTION_KEY={SECRETS['FIELD_ENCRYPTION_KEY']}\n"
    )


def _run_manage_check(tmp_path, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_ENCRYPTION"))}
    env.update({"DJANGO_DEBUG": "false", **extra})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


APPS = """
import json
from django.conf import settings
print(json.dumps(settings.INSTALLED_APPS))
"""


def test_production_settings_install_no_simulator(tmp_path):
    # Given production settings (DJANGO_DEBUG off, secrets from the environment)
    code = code_copy(tmp_path / "code")
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), **SECRETS)
    # When Django starts
    result = run_python(code, DJANGO_SETUP + APPS, env)
    # Then no sandbox app is installed, so `manage.py sandbox` does not exist there
    assert result.returncode == 0, result.stderr
    apps = json.loads(result.stdout)
    assert not [app for app in apps if app.startswith("sandbox")]
    assert "integration.calls" in apps
    assert "sandbox" not in manage(code, "help", env=env).stdout


def test_development_settings_install_the_simulators(tmp_path):
    code = code_copy(tmp_path / "code")
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), DJANGO_DEBUG="true")
    result = run_python(code, DJANGO_SETUP + APPS, env)
    assert result.returncode == 0, result.stderr
    assert "sandbox" in json.loads(result.stdout)


def test_asking_for_the_simulators_in_production_is_refused(tmp_path):
    code = code_copy(tmp_path / "code")
    env = production_env(code, APP_VAR_DIR=str(tmp_path / "var"), SANDBOX_ENABLED="true", **SECRETS)
    result = manage(code, "check", env=env)
    assert result.returncode != 0
    assert "SANDBOX_ENABLED" in result.stderr
