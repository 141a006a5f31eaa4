"""The webhook path through real processes: gunicorn takes the webhooks, a real worker merges
them, and nothing but the door's own wake-up (no beat) hands the jobs over."""

from __future__ import annotations

import json

import pytest
import requests

from integration.calls.models import Call
from integration.models import Job
from integration.unitalk import services
from tests.support.stack import app_stack
from tests.support.waiting import wait_until

from .conftest import payload

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_webhooks_posted_to_gunicorn_are_merged_by_a_worker_without_beat(tmp_path, portal):
    connection = services.connection_create(portal=portal, api_key="LiveKey00001")
    with app_stack(tmp_path, beat=False) as stack:
        url = f"{stack.base_url}/unitalk/webhook/{connection.webhook_secret}/"
        # out of order and repeated, as Unitalk may deliver them
        for name in ("call_end_in", "call_new_in", "call_answer_in", "call_end_in"):
            response = requests.post(
                url,
                data=json.dumps(payload(name)),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert response.status_code == 200

        webhook_jobs = Job.objects.filter(kind="unitalk.webhook")
        wait_until(
            lambda: webhook_jobs.filter(state=Job.State.SUCCEEDED).count() == 3,
            timeout=60,
            message="three webhook jobs to succeed on the worker",
        )

    call = Call.objects.get()
    assert (call.status, call.state, call.operator_line) == ("ended", "ANSWER", "2001")
    assert webhook_jobs.count() == 3
