"""Fixtures for the call-pipeline unit tests: a portal with tokens, a Unitalk connection, and a
small fake of the Bitrix24 telephony REST behind `responses` (register dedup, finish once)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses
from django.utils import timezone

from bitrixapp.models import Portal, portal_options
from integration import jobs
from integration.calls.models import Call
from integration.models import Job
from integration.unitalk import selectors
from integration.unitalk import services as unitalk_services
from integration.unitalk.models import OperatorMapping
from tests.support.factories import PortalFactory

PORTAL_HOST = "acme.bitrix24.com"
REST = f"https://{PORTAL_HOST}/rest/"
UNITALK = "https://api.unitalk.test/api"
RECORDING = "https://api.unitalk.test/tracking/rec/1/2026-05-01"

__all__ = [
    "FakeBitrix",
    "bitrix",
    "call_settings",
    "connection",
    "make_call",
    "portal",
    "run_jobs",
]


@pytest.fixture(autouse=True)
def call_settings(settings, tmp_path):
    settings.BITRIX24_PORTAL_HOSTS = ["*.bitrix24.com"]
    settings.RATELIMIT_DIR = tmp_path / "ratelimit"
    settings.UNITALK_API_URL = UNITALK
    settings.UNITALK_RATE_BURST = 1000
    settings.UNITALK_RATE_PER_SECOND = 1000.0
    settings.APP_BASE_URL = "https://app.example.com"
    settings.JOB_BACKOFF_BASE_S = 1.0
    settings.CALL_DIAL_HORIZON_S = 600
    selectors.webhook_target_cache_clear()
    return settings


@pytest.fixture
def portal(db) -> Portal:
    portal = PortalFactory(with_tokens=True, domain=PORTAL_HOST, installed_by_user_id=1)
    options = portal_options(portal)
    options.default_user_id = 9
    options.save()
    return portal


@pytest.fixture
def connection(portal):
    conn = unitalk_services.connection_create(portal=portal, api_key="K" + uuid.uuid4().hex[:11])
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=5, line="101")
    return conn


_REF = re.compile(r"\$result\[([^\]]+)\]\[([^\]]+)\]")


@dataclass
class FakeBitrix:
    """Bitrix24 telephony as docs/bitrix24.md §5 describes it, just enough for the pipeline."""

    rsps: responses.RequestsMock
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    registers: int = 0
    finishes: int = 0
    #: Methods that fail as a whole request: method -> exception or (status, body), used once.
    fail_next: dict[str, Any] = field(default_factory=dict)
    #: Process the request but lose the answer (the client sees a timeout).
    lose_answer: set[str] = field(default_factory=set)
    crm_owner: int = 7
    next_id: int = 100

    def install(self) -> FakeBitrix:
        self.rsps.add_callback(
            responses.POST, re.compile(re.escape(REST) + r"[\w.]+"), callback=self._handle
        )
        return self

    def _handle(self, request: Any) -> Any:
        method = request.url.rsplit("/", 1)[-1].lower()
        params = json.loads(request.body or "{}")
        params.pop("auth", None)
        self.requests.append((method, params))
        failure = self.fail_next.pop(method, None)
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            return failure[0], {}, json.dumps(failure[1])
        if method == "batch":
            body = self._batch(params["cmd"])
        else:
            try:
                body = {"result": self.run(method, params)}
            except LookupError as exc:
                body = {"error": "", "error_description": str(exc)}
                if method in self.lose_answer:
                    self.lose_answer.discard(method)
                    raise requests.ConnectionError("reset after send") from None
                return 400, {}, json.dumps(body)
        if method in self.lose_answer:
            self.lose_answer.discard(method)
            raise requests.ConnectionError("connection reset after the request was sent")
        return 200, {}, json.dumps(body)

    def _batch(self, cmd: dict[str, str]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, command in cmd.items():
            method, _, query = command.partition("?")
            # Like Bitrix24: references are filled in the decoded values, so a percent-encoded
            # reference and a raw one both work (issue 19).
            params: dict[str, Any] = {
                name: _REF.sub(
                    lambda m: str((results.get(m.group(1)) or {}).get(m.group(2), "")), value
                )
                for name, value in parse_qsl(query, keep_blank_values=True)
            }
            try:
                results[key] = self.run(method.lower(), params)
            except LookupError as exc:
                errors[key] = {"error": "", "error_description": str(exc)}
        return {"result": {"result": results, "result_error": errors or []}}

    def run(self, method: str, params: dict[str, Any]) -> Any:
        if method == "telephony.externalcall.register":
            return self.register(params)
        if method == "telephony.externalcall.finish":
            return self.finish(params)
        if method == "telephony.externalcall.attachrecord":
            if params["CALL_ID"] not in self.finished:
                raise LookupError("Call is not found in the statistic table.")
            self.finished[params["CALL_ID"]]["record"] = params["FILENAME"]
            return {"FILE_ID": 555}
        if method == "telephony.externalcall.searchcrmentities":
            return [
                {"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 3, "ASSIGNED_BY_ID": self.crm_owner}
            ]
        if method == "crm.activity.list":
            flt = params.get("filter", {})
            return [a for a in self.activities if a["START_TIME"] == flt.get("START_TIME")]
        if method == "crm.timeline.comment.add":
            return 1
        if method in ("telephony.externalcall.show", "telephony.externalcall.hide"):
            return True
        raise AssertionError(f"unexpected method {method}")

    def register(self, params: dict[str, Any]) -> dict[str, Any]:
        for call_id, active in self.active.items():
            if active["EXTERNAL_CALL_ID"] == str(params.get("EXTERNAL_CALL_ID")):
                return {"CALL_ID": call_id, "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 3}
        self.registers += 1
        self.next_id += 1
        call_id = f"externalCall.{self.next_id}"
        self.active[call_id] = {
            "EXTERNAL_CALL_ID": str(params.get("EXTERNAL_CALL_ID")),
            "PHONE_NUMBER": str(params.get("PHONE_NUMBER")),
            "START": str(params.get("CALL_START_DATE") or ""),
        }
        return {"CALL_ID": call_id, "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": 3}

    def finish(self, params: dict[str, Any]) -> dict[str, Any]:
        call_id = str(params.get("CALL_ID"))
        active = self.active.pop(call_id, None)
        if active is None:
            raise LookupError("Call is not found (call should be registered prior to finishing")
        self.finishes += 1
        self.next_id += 1
        self.finished[call_id] = {**active, "STATUS_CODE": str(params.get("STATUS_CODE"))}
        self.activities.append(
            {
                "ID": str(self.next_id),
                "ORIGIN_ID": call_id,
                "START_TIME": active["START"],
                "SUBJECT": f"Call {active['PHONE_NUMBER']}",
            }
        )
        return {"CALL_ID": call_id, "CRM_ACTIVITY_ID": self.next_id}

    def methods(self) -> list[str]:
        return [m for m, _ in self.requests]


@pytest.fixture
def bitrix(rsps) -> FakeBitrix:
    return FakeBitrix(rsps).install()


def make_call(
    portal: Portal,
    *,
    direction: str = Call.Direction.IN,
    state: str = "ANSWER",
    ended: bool = True,
    number: str = "380501112233",
    line: str = "101",
    talk: int = 42,
    meta: str = "",
    recording: str = "",
) -> Call:
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    if ended and direction == Call.Direction.IN and state != "ANSWER":
        direction = Call.Direction.MISSED
    return Call.objects.create(
        portal=portal,
        unitalk_call_id=uuid.uuid4().hex[:12],
        direction=direction,
        status=Call.Status.ENDED if ended else Call.Status.RINGING,
        state=state if ended else "",
        ended=ended,
        client_number=number,
        operator_line=line,
        started_at=start,
        talk_seconds=talk if state == "ANSWER" else 0,
        meta=meta,
        recording_url=recording,
    )


def run_jobs(*, rounds: int = 20, force: bool = True) -> list[Job]:
    """Run every open job until none is due (force: make retrying jobs due now)."""
    ran: list[Job] = []
    for _ in range(rounds):
        jobs.jobs_feed()  # received webhook events become their jobs, as the dispatcher does
        if force:
            Job.objects.filter(state=Job.State.RETRYING).update(next_attempt_at=timezone.now())
        due = list(
            Job.objects.filter(
                state__in=[Job.State.PENDING, Job.State.RETRYING],
                next_attempt_at__lte=timezone.now(),
            ).order_by("pk")
        )
        if not due:
            break
        for job in due:
            jobs.job_execute(job_id=job.pk)
            ran.append(job)
    return ran
