"""What an operator sees after a small run: metrics with the counts it caused, and logs where
every line of every process is JSON, ids are in full and only secrets are masked.

The app runs as production runs it (gunicorn with gunicorn.conf.py, the Procfile's two lanes — a
prefork background worker and `worker-interactive` with its threads pool — and beat;
prometheus-client multiprocess mode) against the sandbox: an answered click-to-call, one dialed
through a Unitalk 503, a missed inbound call and a webhook with a wrong secret.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bitrixapp import heartbeats
from bitrixapp.models import Portal
from integration.calls.models import CallSync, FailedCall
from integration.models import Job, JobAttempt
from integration.unitalk.models import UnitalkConnection
from tests.e2e.test_calls_pipeline import call_world, started
from tests.support.waiting import wait_until
from tests.support.world import CLIENT_SECRET, KEY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-5f0c2a9e71d34b8a"
WRONG_SECRET = "not-the-webhook-secret-123456"
#: Every process of the Procfile but `release` (docs/operations.md), each with its own log.
PROCESSES = ("web", "worker", "worker-interactive", "beat")
IDLE = ("worker", "worker-interactive", "beat")
MASKED = re.compile(r"\*\*\*\*([A-Za-z0-9_.~+/=-]{0,4})")


def _click(world, phone: str) -> str:
    out = world.bx(
        f"portals/{world.portal.member_id}/click-to-call", {"user_id": "1", "phone": phone}
    )
    return out["call"]["CALL_ID"]


def _recorded(call_id: str) -> bool:
    return CallSync.objects.filter(bitrix_call_id=call_id, stage=CallSync.Stage.RECORDED).exists()


def _scrape(base: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text[:500]
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_the_run_and_every_log_line_is_json_with_ids_in_full(tmp_path, settings):
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "METRICS_TOKEN": TOKEN,
        "HEARTBEAT_INTERVAL_S": "0.5",
    }
    with call_world(tmp_path, settings, env=env, concurrency=2, procfile_lanes=True) as world:
        settings.CELERY_TASK_DEFAULT_QUEUE = world.stack.env["CELERY_TASK_DEFAULT_QUEUE"]
        base, portal = world.stack.base_url, world.portal
        # the interactive lane is the Procfile's own line, its threads pool (docs/pipeline.md)
        assert started(world, "worker-interactive")["pool"] == "thread"
        connection = UnitalkConnection.objects.get(portal=portal)

        # an answered click-to-call
        answered = _click(world, "+380501110001")
        wait_until(lambda: _recorded(answered), timeout=90, message="the call recorded")
        # a click-to-call while Unitalk answers 503, then placed once it is back
        world.fault("unitalk", "503")
        retried = _click(world, "+380501110002")
        wait_until(
            lambda: JobAttempt.objects.filter(job__kind="call.dial", decision="retry").exists(),
            timeout=60,
            message="a dial attempt refused with 503 and retried",
        )
        world.fault("unitalk", "503", rate=0)
        wait_until(lambda: _recorded(retried), timeout=90, message="the retried call recorded")
        # a missed inbound call
        world.ut("calls", {"from": "380509990001", "line": "102", "outcome": "noanswer"})
        wait_until(
            lambda: FailedCall.objects.filter(kind=FailedCall.Kind.MISSED).exists(),
            timeout=90,
            message="the missed call's item",
        )
        wait_until(
            lambda: CallSync.objects.filter(stage__in=["finished", "recorded"]).count() == 3,
            timeout=60,
            message="three calls finished in Bitrix24",
        )
        # a webhook with a wrong secret, and probes whose request ids the logs must carry
        wrong = requests.post(f"{base}/unitalk/webhook/{WRONG_SECRET}/", json={}, timeout=30)
        assert wrong.status_code == 404
        request_ids = [
            requests.get(f"{base}/healthz", timeout=30).headers["X-Request-ID"] for _ in range(2)
        ]

        samples = _scrape(base)

        # idle: once every job is done, while beat ticks for a few seconds, neither worker nor
        # beat writes a line
        wait_until(
            lambda: not Job.objects.filter(state__in=Job.OPEN_STATES).exists(),
            timeout=60,
            message="every job done",
        )
        quiet_from = {name: len(world.stack.log(name).splitlines()) for name in IDLE}
        since = time.time()
        wait_until(
            lambda: (heartbeats.heartbeat_read("beat") or {}).get("at", 0) > since + 3,
            timeout=30,
            message="beat ticking for 3 s",
        )
        idle = {name: world.stack.log(name).splitlines()[n:] for name, n in quiet_from.items()}
        secrets = {KEY, CLIENT_SECRET, TOKEN, WRONG_SECRET, connection.webhook_secret}
        row = Portal.objects.get(pk=portal.pk)
        secrets |= {row.access_token, row.refresh_token, row.application_token}
        member_id = portal.member_id
        logs = {name: world.stack.log(name) for name in PROCESSES}

    # metrics: the counts this run caused
    jobs = "unitalk_app_jobs"
    assert _value(samples, jobs, kind="call.dial", state="succeeded") == 2
    assert (
        _value(
            samples,
            "unitalk_app_job_attempts_total",
            kind="call.dial",
            outcome="failed",
            decision="retry",
        )
        >= 1
    )
    assert _value(samples, "unitalk_app_click_to_call_seconds_count") == 2
    assert _value(samples, "unitalk_app_call_end_to_crm_seconds_count") == 3
    requests_total = "unitalk_app_provider_requests_total"
    assert _value(samples, requests_total, provider="unitalk", status="503") >= 1
    assert _value(samples, requests_total, provider="unitalk", status="200") >= 3
    assert _value(samples, requests_total, provider="bitrix", status="200") >= 6
    assert _value(samples, "unitalk_app_rate_limit_wait_seconds_count", provider="bitrix") >= 6
    answers = "unitalk_app_http_answers_total"
    assert _value(samples, answers, route="unitalk-webhook", status="200") >= 6
    assert _value(samples, answers, route="unitalk-webhook", status="404") == 1
    assert (
        _value(samples, "unitalk_app_webhook_events_total", provider="unitalk", state="processed")
        >= 6
    )
    assert _value(samples, "unitalk_app_portals", state="active") == 1
    queue = frozenset({("queue", settings.CELERY_TASK_DEFAULT_QUEUE)})
    assert ("unitalk_app_queue_oldest_due_seconds", queue) in samples

    # logs: every line of every process is a JSON object
    for name, text in logs.items():
        bad = [line for line in text.splitlines() if line.strip() and not _is_json_object(line)]
        assert bad == [], f"{name}: {bad[:3]}"
    # ids in full: the request ids answered, the portal; only secrets are masked
    assert all(rid in logs["web"] for rid in request_ids)
    # both lanes ran this portal's jobs (the dials on the interactive one, docs/pipeline.md)
    assert f'"portal": "{member_id}"' in logs["worker"]
    assert f'"portal": "{member_id}"' in logs["worker-interactive"]
    tails = {s[-4:] for s in secrets if s}
    masked = {m for text in logs.values() for m in MASKED.findall(text)}
    assert masked <= tails | {""}, masked - tails
    assert not {s[-6:] for s in secrets if s and any(s in text for text in logs.values())}
    # levels: routine lines are not INFO, a missed call is not a WARNING, idle is silent
    lines = [
        json.loads(line) for text in logs.values() for line in text.splitlines() if line.strip()
    ]
    assert not [x for x in lines if x["message"].startswith(("Task ", "Scheduler: Sending"))]
    missed = [x for x in lines if "missed" in x["message"].lower() and x["level"] != "INFO"]
    assert missed == []
    assert idle == {name: [] for name in IDLE}


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
