"""Request budgets shared by every process: a leaky bucket per portal or API key.

Bitrix24 and Unitalk count requests per portal / per key, not per worker, so the budget must be
shared by every web and worker process. With `REDIS_URL` it lives in Redis (an atomic Lua script,
Redis' own clock); without it, in small lock-protected files under var/ratelimit, which is correct
for every process on one machine (the embedded default).

The bucket is kept as GCRA (a "theoretical arrival time"): equivalent to the providers' counter
that drains at `per_second` and rejects above `burst`, but it can tell a caller exactly how long to
wait before a request will be accepted, so we wait instead of collecting 503s.

Interactive first (docs/pipeline.md, "Lanes"): one bucket per portal or key whatever the lane,
so the provider's limit is never exceeded, but background requests see a bucket smaller by
`reserve_slots`: they stop while that many slots are still free, and a click finds them. A job
that would have to wait longer than RATE_MAX_SLEEP_S is rescheduled, not put to sleep.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from integration.core import metrics
from integration.core.errors import RateLimitedError

logger = logging.getLogger(__name__)

_GCRA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local send_at = tat - tolerance
if send_at < now then send_at = now end
local wait = send_at - now
if wait > max_wait then return {0, tostring(wait)} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, tostring(wait)}
"""

# The provider told us its counter is full: move the bucket's clock to at least `level`
# requests ahead of now (never back), so every process waits as the provider's counter drains.
_FILL = """
local interval = tonumber(ARGV[1])
local level = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local full = now + level * interval
if tat < full then tat = full end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return 1
"""


@cache
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


@cache
def _gcra_script() -> Any:
    return _redis().register_script(_GCRA)


@cache
def _fill_script() -> Any:
    return _redis().register_script(_FILL)


def _file_for(key: str) -> Path:
    folder = Path(getattr(settings, "RATELIMIT_DIR", settings.VAR_DIR / "ratelimit"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


@contextmanager
def _locked_state(key: str) -> Iterator[dict[str, float]]:
    """Read-modify-write of a key's state under an exclusive file lock."""
    path = _file_for(key)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            raw = fh.read()
            state: dict[str, float] = json.loads(raw) if raw.strip() else {}
            before = dict(state)
            yield state
            if state != before:
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(state))
                fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _reserve_file(
    key: str, interval: float, tolerance: float, max_wait: float
) -> tuple[bool, float]:
    with _locked_state(key) as state:
        now = time.time()
        tat = max(state.get("tat", 0.0), now)
        wait = max(now, tat - tolerance) - now
        if wait > max_wait:
            return False, wait
        state["tat"] = tat + interval
        return True, wait


def reserve(
    key: str, *, burst: int, per_second: float, max_wait: float = 30.0, reserve_slots: int = 0
) -> float:
    """Reserve the next request slot of bucket `key`; return seconds to wait before sending.

    `reserve_slots` of the burst are left to others (interactive work). Raises
    `RateLimitedError` (with the wait as `retry_after`) instead of reserving when the wait would
    exceed `max_wait`: a worker should not sit idle that long, the job is rescheduled.
    """
    interval = 1.0 / per_second
    usable = max(1, burst - max(0, reserve_slots))
    tolerance = (usable - 1) * interval
    if settings.REDIS_URL:
        ok, wait_s = _gcra_script()(keys=[f"ratelimit:{key}"], args=[interval, tolerance, max_wait])
        ok, wait = bool(int(ok)), float(wait_s)
    else:
        ok, wait = _reserve_file(key, interval, tolerance, max_wait)
    if not ok:
        metrics.rate_limit_refusals.labels(metrics.provider_of(key)).inc()
        raise RateLimitedError(
            f"local rate budget for {key} exhausted", retry_after=wait, service="ratelimit"
        )
    return wait


def fill(key: str, *, per_second: float, level: int) -> None:
    """Count bucket `key` as holding `level` requests now: the provider answered that its own
    counter is full (Bitrix24's 503 QUERY_LIMIT_EXCEEDED), so ours was behind it.

    Our pacing runs a little below the provider's drain; with this the two counters meet again
    at the first overflow instead of drifting apart (docs/pipeline.md, "Budgets").
    """
    interval = 1.0 / per_second
    if settings.REDIS_URL:
        _fill_script()(keys=[f"ratelimit:{key}"], args=[interval, level])
        return
    with _locked_state(key) as state:
        state["tat"] = max(state.get("tat", 0.0), time.time() + level * interval)


def acquire(
    key: str,
    *,
    burst: int,
    per_second: float,
    max_wait: float = 30.0,
    lane: str = "",
    reserve_slots: int | None = None,
) -> float:
    """Take a slot of `key` for work of `lane`; wait in place only for a moment.

    Background work leaves `reserve_slots` (default RATE_INTERACTIVE_RESERVE_SLOTS) to
    interactive work. Inside a job, a wait longer than RATE_MAX_SLEEP_S (and at most
    `max_wait`) reserves the slot as a ticket for this job and raises RateLimitedError with the
    exact wait: the job is rescheduled for then and spends its ticket, so waiting jobs queue up
    in the bucket instead of all coming back for the same slot. Outside a job nothing is reserved beyond the short wait. Returns the wait taken.

    Background tickets are turns in a bucket of their own (`<key>:background`, same rate): at its
    turn a background job takes the shared bucket only for now. Booked in the shared bucket, they
    moved its clock up to `max_wait` ahead, and a click then queued behind every one of them,
    reserve or not (bench/latency.py: five clicks at once waited 2-5 s behind recording
    downloads' tickets; docs/pipeline.md, "Lanes"). Interactive tickets stay in the shared one.
    """
    from integration.core import lanes

    job_id = lanes.current_job()
    lane = lane or lanes.current_lane()
    kept = settings.RATE_INTERACTIVE_RESERVE_SLOTS if reserve_slots is None else reserve_slots
    slots = 0 if lane == lanes.INTERACTIVE else kept
    slots = max(0, min(slots, burst - 1))
    turns = f"{key}:background" if slots else key
    if job_id is not None:
        ticket = _ticket_take(turns, job_id)
        if ticket is not None:
            wait = ticket - time.time()
            if wait > settings.RATE_MAX_SLEEP_S:
                _ticket_put(turns, job_id, ticket)  # came back early: keep it
                raise RateLimitedError(
                    f"local rate budget for {key}: slot at +{wait:.2f}s",
                    retry_after=wait,
                    service="ratelimit",
                )
            if wait > 0:
                time.sleep(wait)
            taken = max(0.0, wait)
            if turns != key:
                taken += _take_now(key, burst=burst, per_second=per_second, reserve_slots=slots)
            return taken
    limit = max_wait if job_id is not None else settings.RATE_MAX_SLEEP_S
    wait = reserve(turns, burst=burst, per_second=per_second, max_wait=limit, reserve_slots=slots)
    if wait > settings.RATE_MAX_SLEEP_S and job_id is not None:
        _ticket_put(turns, job_id, time.time() + wait)
        raise RateLimitedError(
            f"local rate budget for {key}: slot at +{wait:.2f}s",
            retry_after=wait,
            service="ratelimit",
        )
    metrics.rate_limit_wait_seconds.labels(metrics.provider_of(key)).observe(wait)
    if wait > 0:
        time.sleep(wait)  # pacing within a few ms of the provider's limit, never longer
    if turns != key:
        wait += _take_now(key, burst=burst, per_second=per_second, reserve_slots=slots)
    return wait


def _take_now(key: str, *, burst: int, per_second: float, reserve_slots: int) -> float:
    """A slot of the shared bucket within RATE_MAX_SLEEP_S, or RateLimitedError with the wait
    (interactive work has the slots meanwhile; the job comes back then)."""
    wait = reserve(
        key,
        burst=burst,
        per_second=per_second,
        max_wait=settings.RATE_MAX_SLEEP_S,
        reserve_slots=reserve_slots,
    )
    if wait > 0:
        time.sleep(wait)
    return wait


def _ticket_key(key: str, job_id: int) -> str:
    return f"ticket:{key}:{job_id}"


def _ticket_put(key: str, job_id: int, at: float) -> None:
    ttl = max(1.0, at - time.time()) + 120.0  # a job that never comes back frees nothing
    if settings.REDIS_URL:
        _redis().set(f"ratelimit:{_ticket_key(key, job_id)}", str(at), px=math.ceil(ttl * 1000))
        return
    with _locked_state(_ticket_key(key, job_id)) as state:
        state["at"], state["expires"] = at, time.time() + ttl


def _ticket_take(key: str, job_id: int) -> float | None:
    if settings.REDIS_URL:
        raw = _redis().getdel(f"ratelimit:{_ticket_key(key, job_id)}")
        return float(raw) if raw else None
    path = _file_for(_ticket_key(key, job_id))
    if not path.exists():
        return None
    with _locked_state(_ticket_key(key, job_id)) as state:
        at, expires = state.pop("at", None), state.pop("expires", 0.0)
    path.unlink(missing_ok=True)
    return at if at is not None and expires > time.time() else None


def park(key: str, seconds: float) -> None:
    """Mark `key` unusable for `seconds` (e.g. one Bitrix24 method after a 429)."""
    until = time.time() + max(0.0, seconds)
    if settings.REDIS_URL:
        _redis().set(f"park:{key}", str(until), px=max(1, math.ceil(seconds * 1000)))
        return
    with _locked_state(f"park:{key}") as state:
        state["until"] = max(state.get("until", 0.0), until)


def parked_for(key: str) -> float:
    """Seconds left before `key` may be used again (0 when it is not parked)."""
    if settings.REDIS_URL:
        raw = _redis().get(f"park:{key}")
        until = float(raw) if raw else 0.0
    else:
        with _locked_state(f"park:{key}") as state:
            until = state.get("until", 0.0)
    return max(0.0, until - time.time())
