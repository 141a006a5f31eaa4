"""Lanes (integration/core/lanes.py): each job goes to its lane's queue, follow-ups inherit the lane,
the dispatcher sends due work portal by portal, and the shared budgets keep a reserve for
interactive work without ever letting a worker sleep through a long wait."""

from __future__ import annotations

import time
import uuid

import pytest

from bitrixapp.models import Portal
from integration import jobs
from integration.core import lanes, ratelimit
from integration.core.errors import RateLimitedError
from integration.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

published: list[tuple[int, str]] = []
followed: list[str] = []


@jobs.register("test.lane_click", lane=lanes.INTERACTIVE)
def _click(job):
    # an undeclared follow-up enqueued from an interactive job is interactive too
    followed.append(jobs.job_enqueue(kind="test.lane_any", key=f"f-{job.pk}").payload["lane"])


@jobs.register("test.lane_drain", lane=lanes.BACKGROUND)
def _drain(job):
    followed.append(jobs.job_enqueue(kind="test.lane_any", key=f"f-{job.pk}").payload["lane"])


@jobs.register("test.lane_any")
def _any(job):
    return {"lane": lanes.current_lane()}


@pytest.fixture(autouse=True)
def recorded(monkeypatch):
    published.clear()
    followed.clear()
    monkeypatch.setattr(
        jobs, "_send", lambda pairs, countdown=0: published.extend(p[:2] for p in pairs)
    )


def _portal(name: str) -> Portal:
    return Portal.objects.create(
        member_id=f"{name}-{uuid.uuid4().hex[:8]}",
        domain=f"{name}.bitrix24.com",
        client_endpoint=f"https://{name}.bitrix24.com/rest/",
        status=Portal.Status.ACTIVE,
    )


def test_each_job_is_published_to_its_kinds_lane():
    click = jobs.job_enqueue(kind="test.lane_click", key="c")
    drain = jobs.job_enqueue(kind="test.lane_drain", key="d")
    assert published == [(click.pk, lanes.INTERACTIVE), (drain.pk, lanes.BACKGROUND)]
    assert jobs._queue(lanes.INTERACTIVE) == jobs._queue(lanes.BACKGROUND) + ".interactive"


def test_an_undeclared_kind_runs_in_the_lane_of_the_job_that_enqueued_it():
    click = jobs.job_enqueue(kind="test.lane_click", key="click")
    drain = jobs.job_enqueue(kind="test.lane_drain", key="drain")
    for job in (click, drain):
        jobs.job_execute(job_id=job.pk)
    assert followed == [lanes.INTERACTIVE, lanes.BACKGROUND]
    # and it runs in that lane (the budgets read it)
    follow_up = Job.objects.get(idempotency_key=f"f-{click.pk}")
    jobs.job_execute(job_id=follow_up.pk)
    follow_up.refresh_from_db()
    assert follow_up.result == {"lane": lanes.INTERACTIVE}


def test_a_redispatched_job_goes_back_to_its_own_lane(settings):
    settings.JOB_REDISPATCH_AFTER_S = 0
    click = jobs.job_enqueue(kind="test.lane_click", key="lost")
    Job.objects.filter(pk=click.pk).update(enqueued_at=None)
    published.clear()
    assert jobs.jobs_dispatch() == 1
    assert published == [(click.pk, lanes.INTERACTIVE)]


def test_the_dispatcher_sends_due_work_portal_by_portal():
    # given portal X with a backlog of 6 due jobs enqueued before portal Y's 2
    x, y = _portal("x"), _portal("y")
    xs = [jobs.job_enqueue(kind="test.lane_drain", key=f"x{i}", portal=x).pk for i in range(6)]
    ys = [jobs.job_enqueue(kind="test.lane_drain", key=f"y{i}", portal=y).pk for i in range(2)]
    Job.objects.update(enqueued_at=None)
    published.clear()

    jobs.jobs_dispatch()

    # then Y does not wait behind all of X: one each per turn, each portal in its own order
    order = [job_id for job_id, _ in published]
    assert order[:4] == [xs[0], ys[0], xs[1], ys[1]]
    assert order[4:] == xs[2:]


@pytest.fixture
def file_budget(settings, tmp_path):
    settings.REDIS_URL = ""
    settings.RATELIMIT_DIR = tmp_path
    settings.RATE_INTERACTIVE_RESERVE_SLOTS = 3
    settings.RATE_MAX_SLEEP_S = 0.05


def test_background_leaves_a_reserve_of_the_budget_that_interactive_work_can_use(file_budget):
    # given a bucket of 10 (1 per second): background takes 7 and is then told to come back
    for _ in range(7):
        ratelimit.acquire("b", burst=10, per_second=1.0, lane=lanes.BACKGROUND)
    with pytest.raises(RateLimitedError) as err:
        ratelimit.acquire("b", burst=10, per_second=1.0, lane=lanes.BACKGROUND)
    assert 0.5 < err.value.retry_after <= 1.0
    # when clicks come: the 3 reserved slots are theirs at once, then the bucket is full
    started = time.monotonic()
    for _ in range(3):
        assert ratelimit.acquire("b", burst=10, per_second=1.0, lane=lanes.INTERACTIVE) == 0
    assert time.monotonic() - started < 0.5
    with pytest.raises(RateLimitedError):
        ratelimit.acquire("b", burst=10, per_second=1.0, lane=lanes.INTERACTIVE)


def test_the_unitalk_key_keeps_five_slots_for_clicks_whatever_recordings_want(
    file_budget, settings, monkeypatch
):
    # given the Unitalk key's bucket (10 burst) and recording downloads asking in the background
    from integration.unitalk import client

    settings.UNITALK_RATE_BURST, settings.UNITALK_RATE_PER_SECOND = 10, 0.2
    settings.UNITALK_RATE_INTERACTIVE_RESERVE_SLOTS = 5
    with lanes.lane_scope(lanes.BACKGROUND):
        for _ in range(5):
            client._wait_for_budget("key")
        with pytest.raises(RateLimitedError):
            client._wait_for_budget("key")

    # when five people click at once, then all five are dialled without a wait
    with lanes.lane_scope(lanes.INTERACTIVE):
        started = time.monotonic()
        for _ in range(5):
            client._wait_for_budget("key")
        assert time.monotonic() - started < 0.5


def test_a_long_wait_for_budget_reschedules_instead_of_sleeping(file_budget):
    ratelimit.acquire("s", burst=1, per_second=0.5, lane=lanes.INTERACTIVE)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as err:
        ratelimit.acquire("s", burst=1, per_second=0.5, lane=lanes.INTERACTIVE)
    assert time.monotonic() - started < 0.2  # no sleep in the worker
    assert err.value.service == "ratelimit"
    assert 1.5 < err.value.retry_after <= 2.0


def test_a_burst_of_one_portals_webhooks_goes_to_the_background_lane(settings):
    from integration.unitalk import intake
    from integration.unitalk.models import UnitalkEvent

    # given portal X replaying a backlog and portal Y with one live call
    settings.UNITALK_WEBHOOK_BURST = 5
    x, y = _portal("x"), _portal("y")
    for i in range(6):
        UnitalkEvent.objects.create(portal=x, event="CALL_END", call_id=f"x{i}", payload={})
    UnitalkEvent.objects.create(portal=y, event="CALL_END", call_id="y0", payload={})

    intake.inbox_feed()

    lanes_of = dict(Job.objects.values_list("portal_id", "payload__lane").distinct())
    assert lanes_of == {x.pk: lanes.BACKGROUND, y.pk: lanes.INTERACTIVE}


def test_jobs_waiting_for_budget_queue_up_with_tickets_instead_of_colliding(file_budget):
    # given a bucket of 1 slot per 2 s, just used
    ratelimit.acquire("t", burst=1, per_second=0.5, lane=lanes.INTERACTIVE)
    # when two jobs ask: each gets its own slot, one after the other, and neither sleeps
    waits = {}
    for job_id in (7, 8):
        with (
            lanes.lane_scope(lanes.BACKGROUND, job_id=job_id),
            pytest.raises(RateLimitedError) as err,
        ):
            ratelimit.acquire("t", burst=1, per_second=0.5)
        waits[job_id] = err.value.retry_after
    assert 1.5 < waits[7] <= 2.0
    assert 3.5 < waits[8] <= 4.0
    # and job 7 coming back early keeps its slot (no new, later one)
    with lanes.lane_scope(lanes.BACKGROUND, job_id=7), pytest.raises(RateLimitedError) as again:
        ratelimit.acquire("t", burst=1, per_second=0.5)
    assert again.value.retry_after <= waits[7]


_publish = jobs._send  # the real hand-off (the autouse fixture replaces it in every test)


def test_a_click_is_published_ahead_of_the_live_calls_webhooks(monkeypatch, settings):
    # Measured in bench/latency.py: the one interactive worker took each click after the
    # previous calls' webhooks, ~1 s on a quiet machine (docs/pipeline.md, "Lanes").
    from integration.tasks import job_run

    calls: list[tuple[int, dict]] = []
    monkeypatch.setattr(job_run, "apply_async", lambda args, **kw: calls.append((args[0], kw)))
    _publish([(101, lanes.INTERACTIVE, "unitalk.webhook"), (102, lanes.INTERACTIVE, "call.sync")])
    _publish([(103, lanes.INTERACTIVE, "bitrix.event"), (104, lanes.INTERACTIVE, "call.dial")])
    priorities = {job_id: kw.get("priority") for job_id, kw in calls}
    assert priorities == {
        101: None,
        102: None,
        103: lanes.urgent_priority(),
        104: lanes.urgent_priority(),
    }


def test_on_redis_the_urgent_priority_is_popped_before_the_default():
    # kombu's Redis transport keeps one list per priority step and pops the lowest step first.
    from bisect import bisect

    from kombu.transport.redis import PRIORITY_STEPS

    def step(priority: int) -> int:
        return PRIORITY_STEPS[bisect(PRIORITY_STEPS, priority) - 1]

    from bitrixapp import settings as app_settings

    if app_settings.CELERY_BROKER_URL.startswith("redis://"):
        assert step(app_settings.CELERY_URGENT_PRIORITY) < step(
            app_settings.CELERY_TASK_DEFAULT_PRIORITY
        )
    else:  # the filesystem broker ignores priorities; nothing is asked of it
        assert not hasattr(app_settings, "CELERY_TASK_DEFAULT_PRIORITY")


def test_background_tickets_never_put_a_click_behind_them(file_budget):
    # given a bucket of 10 (2 per second) and 20 background jobs asking for it: 7 get slots now,
    # the others tickets for later (bench/latency.py: recording downloads' tickets held the
    # Unitalk key's clock seconds ahead and five clicks at once waited 2-5 s behind them)
    refused = 0
    for job_id in range(1, 21):
        with lanes.lane_scope(lanes.BACKGROUND, job_id=job_id):
            try:
                ratelimit.acquire("k", burst=10, per_second=2.0, max_wait=30)
            except RateLimitedError:
                refused += 1
    assert refused == 13
    # when clicks come: the 3 reserved slots are theirs at once, whatever background booked
    for _ in range(3):
        assert ratelimit.acquire("k", burst=10, per_second=2.0, lane=lanes.INTERACTIVE) == 0


def test_a_background_job_at_its_turn_is_not_sent_when_clicks_took_the_bucket(file_budget):
    # given clicks that used the whole bucket, and a background job whose turn has come
    for _ in range(10):
        ratelimit.acquire("m", burst=10, per_second=1.0, lane=lanes.INTERACTIVE)
    ratelimit._ticket_put("m:background", 1, time.time())
    # when it comes back for its turn: it is told to wait for a slot, not sent over the limit
    with lanes.lane_scope(lanes.BACKGROUND, job_id=1), pytest.raises(RateLimitedError) as later:
        ratelimit.acquire("m", burst=10, per_second=1.0, max_wait=30)
    assert later.value.retry_after > 3  # background keeps 3 of 10 free: 4 more slots to drain
