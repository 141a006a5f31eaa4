"""The webhook door: secret, size cap, validation, dedupe, fast 200 and one job per event."""

from __future__ import annotations

import json
import time

import pytest

from integration.calls.models import Call
from integration.models import Job
from integration.unitalk import services
from integration.unitalk.models import UnitalkConnection, UnitalkEvent
from integration.unitalk.webhooks import unitalk_webhook

from .conftest import payload, run_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def url(connection):
    return f"/unitalk/webhook/{connection.webhook_secret}/"


def post(client, url, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **extra)


def test_webhook_url_is_the_app_base_url_with_the_secret(connection):
    assert services.connection_webhook_url(connection=connection) == (
        f"https://app.example.com/unitalk/webhook/{connection.webhook_secret}/"
    )


def test_valid_event_is_stored_and_answered_200_then_fed_into_one_job(client, url, sent):
    from integration import jobs

    response = post(client, url, payload("call_new_in"))

    assert response.status_code == 200
    event = UnitalkEvent.objects.get()
    assert (event.event, event.call_id, event.state) == ("CALL_NEW", "1091944", "received")
    assert not Job.objects.exists()  # the door stores one row; the dispatcher makes the job

    assert jobs.jobs_feed() == 1
    assert jobs.jobs_feed() == 0  # fed once
    job = Job.objects.get()
    # a live call's event: the interactive lane (integration/core/lanes.py)
    assert (job.kind, job.payload) == (
        "unitalk.webhook",
        {"event_id": event.pk, "lane": "interactive"},
    )
    event.refresh_from_db()
    assert event.state == "queued"
    assert not Call.objects.exists()  # processing happens in the worker


def test_unknown_secret_is_404_without_a_hint(client, connection):
    response = post(client, "/unitalk/webhook/not-the-secret/", payload("call_new_in"))

    assert response.status_code == 404
    assert b"secret" not in response.content.lower()
    assert not UnitalkEvent.objects.exists()


def test_secret_of_an_uninstalled_portal_is_404(client, url, portal):
    portal.status = portal.Status.UNINSTALLED
    portal.save()

    assert post(client, url, payload("call_new_in")).status_code == 404


def test_wrong_secret_header_is_refused(client, url):
    response = post(client, url, payload("call_new_in"), HTTP_X_UNITALK_SECRET="wrong")

    assert response.status_code == 404


def test_required_secret_header_must_be_present(client, url, connection):
    UnitalkConnection.objects.filter(pk=connection.pk).update(webhook_header_required=True)

    missing = post(client, url, payload("call_new_in"))
    right = post(
        client, url, payload("call_new_in"), HTTP_X_UNITALK_SECRET=connection.webhook_secret
    )

    assert (missing.status_code, right.status_code) == (404, 200)


def test_body_over_the_cap_is_413(client, url, settings):
    settings.UNITALK_WEBHOOK_MAX_BYTES = 1024
    body = payload("call_new_in")
    body["call"]["lastGroupName"] = "x" * 2000

    response = post(client, url, body)

    assert response.status_code == 413
    assert not UnitalkEvent.objects.exists()


def test_get_is_not_allowed(client, url):
    assert client.get(url).status_code == 405


def test_last_webhook_time_is_recorded_on_the_connection(client, url, connection):
    post(client, url, payload("call_new_in"))

    connection.refresh_from_db()
    assert connection.last_webhook_at is not None


def test_form_body_is_accepted_like_json(client, url):
    form = {
        "event": "CALL_END",
        "call_id": "777",
        "call_from": "380505557182",
        "call_to_0": "2000",
        "call_direction": "IN",
        "call_date": "2026-07-09 16:58:52",
        "call_state": "NOANSWER",
        "call_secondstalk": "0",
        "call_secondsfulltime": "12",
    }

    response = client.post(url, data=form)

    assert response.status_code == 200
    event = UnitalkEvent.objects.get()
    assert event.payload["call"]["to"] == ["2000"]


def test_three_deliveries_of_one_webhook_make_one_event_and_one_processing(client, url):
    responses = [post(client, url, payload("call_end_in")) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.json()["status"] for r in responses] == ["ok", "duplicate", "duplicate"]
    event = UnitalkEvent.objects.get()
    assert event.duplicates == 2
    ran = run_jobs()
    assert len(ran) == 1
    call = Call.objects.get()
    assert (call.status, call.state, call.talk_seconds) == ("ended", "ANSWER", 9)


def _broken(mutate):
    body = payload("call_end_in")
    mutate(body)
    return body


MALFORMED = {
    "not-json": ("{not json", "body"),
    "json-array": ("[1, 2]", "body"),
    "json-string": ('"CALL_END"', "body"),
    "no-event": (_broken(lambda b: b.pop("event")), "event"),
    "event-not-string": (_broken(lambda b: b.update(event=5)), "event"),
    "unknown-event": (_broken(lambda b: b.update(event="CALL_FOO")), "event"),
    "no-call": (_broken(lambda b: b.pop("call")), "call"),
    "call-not-object": (_broken(lambda b: b.update(call=[1])), "call"),
    "no-call-id": (_broken(lambda b: b["call"].pop("id")), "call.id"),
    "call-id-bool": (_broken(lambda b: b["call"].update(id=True)), "call.id"),
    "call-id-object": (_broken(lambda b: b["call"].update(id={"x": 1})), "call.id"),
    "call-id-too-long": (_broken(lambda b: b["call"].update(id="9" * 65)), "call.id"),
    "dbid-not-number": (_broken(lambda b: b["call"].update(dbid="abc")), "call.dbid"),
    "bad-direction": (_broken(lambda b: b["call"].update(direction="SIDEWAYS")), "call.direction"),
    "from-not-string": (_broken(lambda b: b["call"].update({"from": ["1"]})), "call.from"),
    "to-not-list": (_broken(lambda b: b["call"].update(to="2000")), "call.to"),
    "to-item-not-string": (_broken(lambda b: b["call"].update(to=[{"a": 1}])), "call.to[0]"),
    "bad-date": (_broken(lambda b: b["call"].update(date="yesterday")), "call.date"),
    "no-date": (_broken(lambda b: b["call"].pop("date")), "call.date"),
    "negative-talk": (_broken(lambda b: b["call"].update(secondsTalk=-1)), "call.secondsTalk"),
    "text-full-time": (
        _broken(lambda b: b["call"].update(secondsFullTime="abc")),
        "call.secondsFullTime",
    ),
    "end-without-state": (_broken(lambda b: b["call"].update(state=None)), "call.state"),
    "cause-not-number": (_broken(lambda b: b["call"].update(cause="busy")), "call.cause"),
    "link-not-http": (
        _broken(lambda b: b["call"].update(link="javascript:alert(1)")),
        "call.link",
    ),
    "meta-too-long": (_broken(lambda b: b["call"].update(meta="m" * 1001)), "call.meta"),
    "empty-body": ("", "body"),
}


@pytest.mark.parametrize(("body", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payload_is_400_naming_the_field_and_nothing_is_stored(client, url, body, field):
    response = post(client, url, body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert not UnitalkEvent.objects.exists()
    assert not Job.objects.exists()


def test_malformed_form_body_is_400(client, url):
    response = client.post(url, data={"event": "CALL_END", "call_id": "1"})

    assert response.status_code == 400
    assert response.json()["field"] == "call.direction"


def test_new_event_wakes_the_dispatcher_and_its_job_is_due_for_dispatch(client, url, kicks, sent):
    from integration import jobs

    post(client, url, payload("call_new_in"))
    post(client, url, payload("call_new_in"))  # a repeat wakes nobody

    assert len(kicks) == 1
    assert jobs.jobs_dispatch() == 1  # fed from the inbox and sent in the same pass
    job = Job.objects.get()
    assert job.idempotency_key == f"unitalk.webhook:{UnitalkEvent.objects.get().pk}"
    assert sent == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_a_kick_feeds_the_inbox_and_publishes_the_jobs_itself_one_hop_fewer(
    client, url, sent, monkeypatch
):
    # CALL_END -> finish took two broker hops: a jobs_dispatch message, then the webhook job's
    # (docs/pipeline.md, "Lanes"); the web process's kicker now does the dispatcher's part.
    from integration import tasks
    from integration.unitalk import intake

    woken: list[int] = []
    monkeypatch.setattr(tasks.jobs_dispatch, "apply_async", lambda *a, **k: woken.append(1))
    post(client, url, payload("call_new_in"))

    intake.dispatch_now()  # what the kicker's thread runs once per window

    job = Job.objects.get()
    assert job.idempotency_key == f"unitalk.webhook:{UnitalkEvent.objects.get().pk}"
    assert job.payload["lane"] == "interactive"
    assert sent == [job.pk]
    assert woken == []  # no jobs_dispatch message for a worker to pick up first


@pytest.mark.django_db(transaction=True)
def test_a_kick_publishes_the_jobs_of_its_feed_and_leaves_other_due_work_to_beat(
    client, url, sent, portal, monkeypatch
):
    # A whole jobs_dispatch per window scanned every portal's due and held jobs in the web
    # process (two fifths of gunicorn's time under load, issue 17): the kicker owns its feed,
    # and the whole dispatch runs at most once per JOB_DISPATCH_INTERVAL_S (the last just now).
    from integration import jobs
    from integration.unitalk import intake

    monkeypatch.setattr(intake, "_swept_at", time.monotonic())
    other = jobs.job_enqueue(kind="call.details", portal=portal, key="due-elsewhere")
    Job.objects.filter(pk=other.pk).update(enqueued_at=None)  # due, and nobody handed it over
    sent.clear()
    post(client, url, payload("call_new_in"))

    intake.dispatch_now()  # what the kicker's thread runs once per window

    job = Job.objects.get(kind=intake.KIND)
    assert sent == [job.pk]
    assert job.enqueued_at is not None  # handed over: the dispatcher does not send it again
    other.refresh_from_db()
    assert other.enqueued_at is None  # still beat's to send
    intake.dispatch_now()  # nothing left in the inbox: nothing sent twice
    assert sent == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_once_per_dispatch_interval_a_kick_runs_the_whole_dispatch_as_beat_would(
    client, url, sent, portal, monkeypatch, settings
):
    # While webhooks come in, a lost hand-off is recovered even with beat down
    # (docs/deploy.md, "beat: exactly one").
    from integration import jobs
    from integration.unitalk import intake

    settings.JOB_DISPATCH_INTERVAL_S = 5
    monkeypatch.setattr(intake, "_swept_at", time.monotonic() - 6)
    lost = jobs.job_enqueue(kind="call.details", portal=portal, key="hand-off-lost")
    Job.objects.filter(pk=lost.pk).update(enqueued_at=None)
    sent.clear()
    post(client, url, payload("call_new_in"))

    intake.dispatch_now()

    webhook_job = Job.objects.get(kind=intake.KIND)
    assert sorted(sent) == sorted([lost.pk, webhook_job.pk])
    assert time.monotonic() - intake._swept_at < 5  # and not again before the next interval


@pytest.mark.django_db(transaction=True)
def test_a_kick_that_cannot_dispatch_here_asks_a_worker(monkeypatch):
    from integration import tasks
    from integration.unitalk import intake

    def broken(**kwargs):
        raise RuntimeError("database went away")

    woken: list[int] = []
    monkeypatch.setattr(intake, "_inbox_take", broken)
    monkeypatch.setattr(intake, "_swept_at", time.monotonic())
    monkeypatch.setattr(tasks.jobs_dispatch, "apply_async", lambda *a, **k: woken.append(1))

    intake.dispatch_now()

    assert woken == [1]


def test_dispatcher_wake_ups_are_coalesced_into_one_publish(monkeypatch, settings):
    from integration.unitalk import intake
    from tests.support.waiting import wait_until

    settings.UNITALK_WEBHOOK_KICK_WINDOW_S = 0.2
    published: list[int] = []
    monkeypatch.setattr(intake, "dispatch_now", lambda: published.append(1))
    kicker = intake._Kicker()

    for _ in range(5):
        kicker.kick()

    wait_until(lambda: published, timeout=5, message="a dispatch")
    assert published == [1]


def test_rotated_secret_retires_the_old_url(client, connection, settings):
    settings.UNITALK_WEBHOOK_TARGET_CACHE_S = 0  # the cache would keep the old URL for a while
    old_url = f"/unitalk/webhook/{connection.webhook_secret}/"

    new_url = services.connection_rotate_webhook_secret(connection=connection)

    assert post(client, old_url, payload("call_new_in")).status_code == 404
    path = new_url.removeprefix("https://app.example.com")
    assert post(client, path, payload("call_new_in")).status_code == 200


@pytest.mark.parametrize("prepared", [True, False])
def test_door_stores_with_and_without_prepared_statements(client, url, settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared

    assert post(client, url, payload("call_new_in")).json() == {"status": "ok"}
    assert post(client, url, payload("call_new_in")).json() == {"status": "duplicate"}

    event = UnitalkEvent.objects.get()
    assert (event.state, event.duplicates, event.payload) == (
        "received",
        1,
        payload("call_new_in"),
    )


def test_feed_after_a_crash_between_its_two_writes_makes_no_second_job(client, url):
    from integration import jobs
    from integration.unitalk import intake

    post(client, url, payload("call_new_in"))
    event = UnitalkEvent.objects.get()
    # The job was inserted but the worker died before the event was marked queued.
    Job.objects.create(
        kind=intake.KIND,
        idempotency_key=intake.job_key(event.pk),
        payload={"event_id": event.pk},
        next_attempt_at=event.received_at,
    )

    assert jobs.jobs_feed() == 1

    assert Job.objects.count() == 1
    event.refresh_from_db()
    assert event.state == "queued"


def test_feed_takes_the_inbox_in_batches_oldest_first(client, url):
    from integration.unitalk import intake

    for call_id in ("1", "2", "3"):
        body = payload("call_new_in")
        body["call"]["id"] = call_id
        post(client, url, body)

    assert intake.inbox_feed(limit=2) == 2
    assert sorted(Job.objects.values_list("subject", flat=True)) == ["call:1", "call:2"]
    assert intake.inbox_feed(limit=2) == 1
    assert intake.inbox_feed(limit=2) == 0
    assert not UnitalkEvent.objects.filter(state="received").exists()


@pytest.mark.parametrize("declared", ["²", "9" * 5000, "-1", "12a"])
def test_content_length_not_a_number_is_400_naming_it(client, url, declared):
    # Through the one integer parser (integration/core/inputs.py): "²" and 5,000 digits pass
    # str.isdigit() and then int() raised, a 500.
    response = post(client, url, payload("call_new_in"), CONTENT_LENGTH=declared)

    assert response.status_code == 400
    assert response.json()["field"] == "Content-Length"
    assert not UnitalkEvent.objects.exists()


@pytest.mark.parametrize("declared", ["²", "9" * 5000])
def test_multipart_content_length_not_a_number_is_400_naming_it(client, url, declared):
    response = client.post(url, data={"event": "CALL_NEW"}, CONTENT_LENGTH=declared)

    assert response.status_code == 400
    assert response.json()["field"] == "Content-Length"
    assert not UnitalkEvent.objects.exists()


def test_declared_length_over_the_cap_is_413(client, url, settings):
    settings.UNITALK_WEBHOOK_MAX_BYTES = 1024

    response = post(client, url, payload("call_new_in"), CONTENT_LENGTH=str(10**12))

    assert response.status_code == 413


@pytest.mark.parametrize("declared", ["²", "9" * 5000])
def test_the_door_parses_content_length_itself(rf, connection, declared):
    # Called directly, without the input guard in front (bitrixapp/middleware.py): the door's
    # own isdigit()-then-int() raised ValueError.
    request = rf.post(
        "/", json.dumps(payload("call_new_in")), "application/json", CONTENT_LENGTH=declared
    )

    response = unitalk_webhook(request, connection.webhook_secret)

    assert response.status_code == 400
    assert json.loads(response.content)["field"] == "Content-Length"


def test_multipart_without_a_declared_length_is_400_not_413(rf, connection):
    request = rf.post("/", {"event": "CALL_NEW"})
    del request.META["CONTENT_LENGTH"]

    response = unitalk_webhook(request, connection.webhook_secret)

    assert response.status_code == 400
    assert json.loads(response.content) == {
        "error": "Content-Length is required",
        "field": "Content-Length",
    }
