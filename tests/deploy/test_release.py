"""The release step speaks JSON like every other process (issue 20 item 1, docs/operations.md
"Log format"): `manage.py release` migrates and collects static files, one log record per
migration applied and a summary; a failure is an ERROR record and exit status 1."""

from __future__ import annotations

import json

from tests.support.codetree import SECRETS, code_copy, manage, production_env


def _records(output: str) -> list[dict]:
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # a plain line fails here
    assert all(isinstance(r, dict) for r in records)
    return records


def test_release_migrates_and_collects_in_json_lines_and_is_idempotent(tmp_path):
    code = code_copy(tmp_path / "code")
    static = tmp_path / "static"
    env = production_env(
        code, APP_VAR_DIR=str(tmp_path / "state"), DJANGO_STATIC_ROOT=str(static), **SECRETS
    )

    first = manage(code, "release", env=env)
    assert first.returncode == 0, first.stderr
    records = _records(first.stdout) + _records(first.stderr)
    applied = [r for r in records if r["message"] == "migration applied"]
    assert {"app", "migration"} <= set(applied[0])
    assert any(r["app"] == "calls" for r in applied)
    [done] = [r for r in records if r["message"] == "release done"]
    assert done["migrations_applied"] == len(applied) > 10
    assert (static / "app").is_dir()

    again = manage(code, "release", "--no-static", env=env)
    assert again.returncode == 0, again.stderr
    records = _records(again.stdout) + _records(again.stderr)
    assert [r["migrations_applied"] for r in records if r["message"] == "release done"] == [0]
    assert not [r for r in records if r["message"] == "static files collected"]


def test_a_failed_release_is_an_error_record_and_exit_status_1(tmp_path):
    code = code_copy(tmp_path / "code")
    env = production_env(
        code,
        APP_VAR_DIR=str(tmp_path / "state"),
        DATABASE_URL="postgres://nobody@127.0.0.1:9/none",  # nothing listens there
        **SECRETS,
    )

    result = manage(code, "release", "--no-static", env=env)

    assert result.returncode == 1
    records = _records(result.stdout) + _records(result.stderr)
    [failed] = [r for r in records if r["message"] == "release failed"]
    assert failed["level"] == "ERROR"
    assert "OperationalError" in failed["exc"]
