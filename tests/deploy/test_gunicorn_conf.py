"""gunicorn.conf.py as the web process runs it: JSON lines only, no webhook secret in them."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import requests

from tests.support.codetree import SECRETS, manage, production_env
from tests.support.processes import ROOT, running
from tests.support.stack import free_port
from tests.support.waiting import wait_until

BIN = Path(sys.executable).parent
SECRET = "Zq7secretWebhookPathSegment0123456789abcdef"


def _load_config():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_redact_replaces_only_the_webhook_secret_segment():
    conf = _load_config()
    assert conf.redact(f"POST /unitalk/webhook/{SECRET}/ HTTP/1.1") == (
        "POST /unitalk/webhook/<redacted>/ HTTP/1.1"
    )
    assert conf.redact(f"/unitalk/webhook/{SECRET}") == "/unitalk/webhook/<redacted>"
    assert conf.redact("/bitrix/install/") == "/bitrix/install/"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("WEB_GRACEFUL_TIMEOUT", "17")
    monkeypatch.setenv("PORT", "9123")
    conf = _load_config()
    assert (conf.workers, conf.graceful_timeout, conf.bind) == (5, 17, ["127.0.0.1:9123"])
    assert conf.logconfig_dict["formatters"]["json"]["()"] == "integration.core.log.JsonFormatter"


@pytest.mark.e2e
def test_every_web_line_is_json_and_the_access_log_hides_the_webhook_secret(tmp_path):
    # Given the web process as production runs it (its config file, settings from the environment)
    env = production_env(ROOT, APP_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1", **SECRETS)
    assert manage(ROOT, "migrate", "--noinput", env=env).returncode == 0
    port, log = free_port(), tmp_path / "web.log"
    argv = [str(BIN / "gunicorn"), "bitrixapp.wsgi", "-c", "gunicorn.conf.py", "--workers", "1"]
    argv += ["--bind", f"127.0.0.1:{port}"]
    base = f"http://127.0.0.1:{port}"
    with running(argv, env=env, log=log, inherit=False) as web:
        wait_until(lambda: _answers(base + "/healthz"), timeout=60, message="gunicorn")
        # When Unitalk posts to a webhook URL (an unknown secret: 404) and a probe asks /healthz
        webhook = requests.post(f"{base}/unitalk/webhook/{SECRET}/?a=1", json={}, timeout=5)
        health = requests.get(base + "/healthz", timeout=5)
        wait_until(lambda: log.read_text().count('"gunicorn.access"') >= 3, timeout=10)
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=60)
    assert webhook.status_code == 404

    # Then every line parses as JSON, and gunicorn's lines never carry the secret
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    ours = [line for line in lines if line["logger"].startswith("gunicorn.")]
    assert not [line for line in ours if SECRET in json.dumps(line)]
    access = [line for line in ours if line["logger"] == "gunicorn.access"]
    posted = next(line for line in access if line["method"] == "POST")
    assert posted["path"] == "/unitalk/webhook/<redacted>/"
    assert posted["message"] == "POST /unitalk/webhook/<redacted>/ 404"
    assert posted["status"] == 404
    assert isinstance(posted["duration_ms"], int)
    assert "a=1" not in json.dumps(posted)  # no query strings in the access log
    probe = [line for line in access if line["path"] == "/healthz"][-1]
    assert health.headers["X-Request-ID"].endswith(probe["request_id"].lstrip("*"))
    # and a SIGTERM is a graceful stop, said in JSON too
    assert any(line["message"] == "Shutting down: Master" for line in ours)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_by_default_two_processes_per_core_with_two_threads(monkeypatch):
    # A door's work is Python: processes, not threads, let five clicks at once use both cores
    # (docs/operations.md "Scaling").
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("WEB_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    conf = _load_config()
    assert (conf.workers, conf.threads) == (4, 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert _load_config().workers == 8


def test_a_web_worker_freezes_the_loaded_app_out_of_the_garbage_collectors_reach():
    # A full collection walked the whole loaded app in the middle of requests
    # (docs/pipeline.md, "Pauses"): gunicorn's hook after a worker loaded it freezes it.
    import gc

    conf = _load_config()
    before = gc.get_freeze_count()
    try:
        conf.post_worker_init(None)
        assert gc.get_freeze_count() > max(before, 10_000)
    finally:
        gc.unfreeze()
