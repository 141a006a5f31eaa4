"""Durable jobs: enqueue, claim, attempt, schedule, pause, dead-letter.

The database is the source of truth; Celery only carries "run job N now". A job is created in
the caller's transaction and handed to the broker after commit; if that hand-off is lost (crash
between commit and publish, broker down), `jobs_dispatch` finds the due row and sends it again.
Retry times live in the row (`next_attempt_at`), so the broker never holds long ETAs.

A job runs at most once at a time: `_claim` is a conditional UPDATE that only one worker wins.
The lease is renewed while the attempt runs (integration/lease.py); a worker that dies
mid-attempt stops renewing, the lease expires within seconds and the job is claimable again,
its lost attempt closed as abandoned. Handlers must therefore be idempotent (they are: every
external write carries our key).

Every job runs in a lane (integration/core/lanes.py): its message goes to that lane's queue, so a
click-to-call never waits behind a backlog drain. The lane is kept in the payload ("lane"), so a
re-dispatched job goes back to the same queue.

A held job (`publish=False`, marked "held" in its payload) is one a sibling of the same portal
and kind will reach, e.g. the next link of a drain chain (integration/calls/chain.py). The
dispatcher does not resend held rows as lost hand-offs: it publishes the oldest one only when no
unheld job of that portal and kind is still open, so a broken chain goes on and an intact one is
not flooded with a message per row (bench/agent_status.py saw 4,000 held drains sent at once).

An inbox is a table whose rows become jobs later, in bulk (the Unitalk webhook door stores only
its own row): `jobs_dispatch` first asks every registered inbox to turn its rows into jobs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from integration import lease
from integration.core import lanes, retry
from integration.core.errors import RateLimitedError
from integration.core.log import log_context
from integration.models import Job, JobAttempt

logger = logging.getLogger(__name__)

Handler = Callable[[Job], Any]
DeadHook = Callable[[Job, BaseException], None]


@dataclass(frozen=True)
class JobKind:
    handler: Handler
    on_dead: DeadHook | None = None
    lane: str = lanes.INHERIT
    urgent: bool = False


#: Payload flag of a job kept without a message (see the module docstring).
HELD = "held"
OPEN = (Job.State.PENDING, Job.State.RETRYING)

_registry: dict[str, JobKind] = {}
_inboxes: list[Callable[[], int]] = []
#: Set while this process runs a job: an interactive follow-up may then run right here.
_in_job: ContextVar[bool] = ContextVar("in_job", default=False)

#: Run with the job when it ends for good, `state` "succeeded" or "dead" (hooks keep things that
#: point at jobs, like failed-call items, in step).
SettledHook = Callable[[Job, str], None]
_settled_hooks: list[SettledHook] = []


def on_settled(hook: SettledHook) -> SettledHook:
    """Declare a hook run when any job settles (succeeded, or dead after its on_dead).

    Called from the capabilities' flow tables (calls/flow.py, notifications/flow.py), so reading
    those tables shows everything that follows a job; the engine knows no capability.
    """
    _settled_hooks.append(hook)
    return hook


def _settled(job: Job, state: str) -> None:
    for hook in _settled_hooks:
        hook(job, state)


def register(
    kind: str,
    *,
    on_dead: DeadHook | None = None,
    lane: str = lanes.INHERIT,
    urgent: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare the service that performs jobs of `kind`, what to do when one dies, and its lane
    (`lanes.INHERIT`: the lane of whatever enqueues it). `urgent` kinds (a person's click) go
    ahead of everything else queued in their lane (lanes.urgent_priority)."""

    def decorator(func: Handler) -> Handler:
        _registry[kind] = JobKind(handler=func, on_dead=on_dead, lane=lane, urgent=urgent)
        return func

    return decorator


def register_inbox(feed: Callable[[], int]) -> Callable[[], int]:
    """Declare an inbox: `feed()` turns its waiting rows into jobs and returns how many."""
    if feed not in _inboxes:
        _inboxes.append(feed)
    return feed


def jobs_feed() -> int:
    """Turn every inbox's waiting rows into jobs; an inbox that fails is retried next time."""
    created = 0
    for feed in _inboxes:
        try:
            created += feed()
        except Exception:
            logger.exception("inbox could not be turned into jobs", extra={"inbox": feed.__name__})
    return created


def registered_kinds() -> list[str]:
    return sorted(_registry)


def _lease() -> timedelta:
    return lease.lease_length()


def job_lane(job: Job) -> str:
    """The lane a job runs in: as stored when it was enqueued, else its kind's, else background."""
    stored = job.payload.get("lane") if isinstance(job.payload, dict) else None
    if stored in lanes.LANES:
        return str(stored)
    kind = _registry.get(job.kind)
    return kind.lane if kind and kind.lane in lanes.LANES else lanes.BACKGROUND


def _queue(lane: str) -> str:
    return lanes.queue_for(lane)


def _urgent(kind: str) -> bool:
    registered = _registry.get(kind)
    return bool(registered and registered.urgent)


def _send(hand_offs: Iterable[tuple[int, str, str]], *, countdown: float = 0) -> None:
    """Publish "run job N" for each (job id, lane, kind) to its lane's queue; an urgent kind's
    message goes ahead of the others waiting there (docs/pipeline.md, "Lanes")."""
    from integration.tasks import job_run

    for job_id, lane, kind in hand_offs:
        options: dict[str, Any] = {"queue": _queue(lane)}
        if _urgent(kind):
            options["priority"] = lanes.urgent_priority()
        if countdown > 0:
            options["countdown"] = countdown
        job_run.apply_async(args=(job_id,), **options)


def _send_after_commit(job_id: int, lane: str, kind: str, countdown: float = 0) -> None:
    transaction.on_commit(lambda: _send([(job_id, lane, kind)], countdown=countdown))


def _run_here_after_commit(job_id: int) -> None:
    """Run an interactive follow-up in this worker once committed: one broker hop fewer for a
    person who is waiting. The row is the truth either way: if this process dies first, the
    dispatcher finds the row (enqueued_at goes stale, or its lease expires) and sends it."""
    transaction.on_commit(lambda: job_execute(job_id=job_id))


def job_enqueue(
    *,
    kind: str,
    key: str | None = None,
    portal: Any = None,
    subject: str = "",
    payload: dict[str, Any] | None = None,
    delay_s: float = 0,
    lane: str | None = None,
    publish: bool = True,
    run_here: bool = False,
) -> Job:
    """Create a job once per idempotency `key` and hand it to a worker after commit.

    Enqueueing the same key again returns the existing job untouched: duplicate events and
    webhooks turn into one piece of work. `lane` overrides the kind's lane. `publish=False`
    keeps the row only (a job already on its way will do the work, e.g. the portal's next
    drain; the dispatcher sends it if nobody does). `run_here=True` runs an interactive job in
    this worker right after commit instead of a broker hop (only inside a running job).
    """
    if kind not in _registry:
        raise LookupError(f"no handler registered for job kind {kind!r}")
    now = timezone.now()
    chosen = lanes.resolve(_registry[kind].lane, requested=lane)
    payload = {**(payload or {}), "lane": chosen}
    if not publish:
        payload[HELD] = True
    idempotency_key = key or f"{kind}:{uuid.uuid4().hex}"
    # Insert first, read only on a clash (docs/pipeline.md "Fewer hops"). A concurrent twin
    # waits on the unique key for ours and then clashes, so the read finds a committed row.
    try:
        with transaction.atomic():
            job = Job.objects.create(
                idempotency_key=idempotency_key,
                kind=kind,
                portal=portal,
                subject=subject[:128],
                payload=payload,
                next_attempt_at=now + timedelta(seconds=delay_s),
                enqueued_at=now,
            )
        created = True
    except IntegrityError:
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise  # not the key that clashed: a real error
        job, created = existing, False
    if created:
        logger.info(
            "job enqueued", extra={"job": job.pk, "kind": kind, "subject": subject, "lane": chosen}
        )
        if run_here and delay_s <= 0 and _in_job.get() and chosen == lanes.INTERACTIVE:
            _run_here_after_commit(job.pk)
        elif publish:
            _send_after_commit(job.pk, chosen, kind, countdown=delay_s)
    return job


def job_send(*, job: Job) -> None:
    """Hand an existing due job to its lane now (after commit), e.g. the next drain of a chain."""
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now())
    _send_after_commit(job.pk, job_lane(job), job.kind)


def _claim(job_id: int) -> bool:
    now = timezone.now()
    due = Q(state__in=[Job.State.PENDING, Job.State.RETRYING], next_attempt_at__lte=now)
    abandoned = Q(state=Job.State.RUNNING, lease_expires_at__lt=now)
    return bool(
        Job.objects.filter(due | abandoned, pk=job_id).update(
            state=Job.State.RUNNING,
            attempts=F("attempts") + 1,
            lease_expires_at=now + _lease(),
            first_attempt_at=Coalesce(F("first_attempt_at"), Value(now)),
            updated_at=now,
        )
    )


def job_execute(*, job_id: int) -> str | None:
    """Run one attempt of a job if it is due and nobody else runs it. Returns the new state."""
    if not _claim(job_id):
        return None
    job = Job.objects.select_related("portal").get(pk=job_id)
    attempt = JobAttempt.objects.create(job=job, number=job.attempts)
    kind = _registry.get(job.kind)
    portal_ref = job.portal.member_id if job.portal else None
    in_job = _in_job.set(True)
    state: str | None = None
    try:
        with (
            log_context(job=job.pk, attempt=job.attempts, portal=portal_ref),
            lanes.lane_scope(job_lane(job), job_id=job.pk),
        ):
            abandoned = lease.attempts_abandon(job=job, number=job.attempts)
            started = time.monotonic()
            try:
                if kind is None:
                    raise LookupError(f"no handler registered for job kind {job.kind!r}")
                if abandoned >= settings.JOB_MAX_ABANDONED:
                    raise lease.WorkerLostRepeatedly(
                        f"{abandoned} attempts died with their worker; not trying again"
                    )
                with lease.lease_kept(job_id=job.pk, attempt=job.attempts):
                    result = kind.handler(job)
            except Exception as exc:  # the task boundary: every failure becomes a decision
                state = _record_failure(job, attempt, exc, kind)
            else:
                state = _record_success(job, attempt, result, time.monotonic() - started)
    finally:
        _in_job.reset(in_job)
    if state is None:  # cancelled while it ran, or a hook moved it on: ask the row
        state = Job.objects.filter(pk=job.pk).values_list("state", flat=True).first()
    return state


def _record_success(job: Job, attempt: JobAttempt, result: Any, elapsed: float) -> str:
    now = timezone.now()
    attempt.outcome = JobAttempt.Outcome.SUCCEEDED
    attempt.finished_at = now
    attempt.save(update_fields=["outcome", "finished_at"])
    # The row as the UPDATE leaves it, kept on the instance for the settled hooks: a per-job
    # read-back (and the portal it dropped) was a tenth of a click's queries (issue 17).
    done: dict[str, Any] = {
        "state": Job.State.SUCCEEDED,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
        "result": result if isinstance(result, dict) else {},
        "last_error": "",
        "last_error_class": "",
        "pause_key": "",
    }
    Job.objects.filter(pk=job.pk).update(**done)
    for name, value in done.items():
        setattr(job, name, value)
    logger.info("job succeeded", extra={"kind": job.kind, "elapsed_ms": round(elapsed * 1000)})
    _settled(job, Job.State.SUCCEEDED)
    return Job.State.SUCCEEDED


def _record_failure(
    job: Job, attempt: JobAttempt, exc: Exception, kind: JobKind | None
) -> str | None:
    """Record the attempt's failure and the decision; the state it left, None when unsure."""
    now = timezone.now()
    decision = retry.decide(
        exc, attempt=job.attempts, first_attempt_at=job.first_attempt_at or now, now=now
    )
    message = str(exc)[:2000] or type(exc).__name__
    attempt.outcome = JobAttempt.Outcome.FAILED
    attempt.finished_at = now
    attempt.error_class = type(exc).__name__
    attempt.error = message
    attempt.decision = decision.action
    attempt.delay_s = decision.delay_s
    attempt.save()
    update: dict[str, Any] = {
        "last_error_class": type(exc).__name__,
        "last_error": message,
        "lease_expires_at": None,
        "updated_at": now,
    }
    log_extra = {"kind": job.kind, "error_class": type(exc).__name__, "decision": decision.action}
    if decision.action == retry.RETRY:
        update |= {
            "state": Job.State.RETRYING,
            "next_attempt_at": now + timedelta(seconds=decision.delay_s),
            "enqueued_at": None,
        }
        # Our own budget saying "your turn is later" is pacing, not a failure: nobody needs to
        # act on it (docs/operations.md, log levels).
        pacing = isinstance(exc, RateLimitedError) and exc.service == "ratelimit"
        logger.log(
            logging.INFO if pacing else logging.WARNING,
            "job attempt failed, retrying in %.1fs: %s",
            decision.delay_s,
            message,
            extra=log_extra,
        )
    elif decision.action == retry.PAUSE:
        update |= {"state": Job.State.PAUSED, "pause_key": decision.pause_key}
        logger.warning("job paused (%s): %s", decision.pause_key, message, extra=log_extra)
    else:
        update |= {"state": Job.State.DEAD, "finished_at": now}
        is_bug = not hasattr(exc, "retryable")
        logger.error("job dead: %s", message, extra=log_extra, exc_info=exc if is_bug else None)
    # Guarded on RUNNING: a job cancelled while it ran stays cancelled.
    moved = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(**update)
    if decision.action == retry.RETRY and decision.delay_s <= settings.JOB_SHORT_RETRY_S:
        Job.objects.filter(pk=job.pk).update(enqueued_at=now)
        _send_after_commit(job.pk, job_lane(job), job.kind, countdown=decision.delay_s)
    if decision.action == retry.DEAD:
        job.refresh_from_db()
        try:
            if kind and kind.on_dead:
                kind.on_dead(job, exc)
            _settled(job, Job.State.DEAD)
        except Exception:
            logger.exception("dead-letter hook failed", extra={"kind": job.kind})
        return None  # a dead-letter hook may retry it (e.g. a reroute): the row says
    return str(update["state"]) if moved else None


def _unheld() -> Q:
    # A key that is missing is NULL in SQL, and NOT (NULL) would drop the row: say it outright.
    return ~Q(payload__held=True) | Q(payload__held__isnull=True)


def jobs_dispatch(*, limit: int = 500) -> int:
    """Hand every due job to the broker (beat calls this). Returns how many were sent."""
    jobs_feed()
    now = timezone.now()
    stale = now - timedelta(seconds=getattr(settings, "JOB_REDISPATCH_AFTER_S", 60))
    due = Q(state__in=OPEN, next_attempt_at__lte=now) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    )
    abandoned = Q(state=Job.State.RUNNING, lease_expires_at__lt=now)
    rows = list(
        Job.objects.filter((due & _unheld()) | abandoned)
        .order_by("next_attempt_at")
        .only("pk", "kind", "portal_id", "payload")[:limit]
    )
    rows += _held_unblocked(due)
    if rows:
        jobs_hand_over(rows, now=now)
        logger.info("dispatched due jobs", extra={"count": len(rows)})
    return len(rows)


def jobs_hand_over(rows: list[Job], *, now: Any = None) -> None:
    """Mark rows (pk, kind, portal_id, payload) handed over and publish them portal by portal; a
    lost publish is sent again once enqueued_at is stale (JOB_REDISPATCH_AFTER_S)."""
    Job.objects.filter(pk__in=[row.pk for row in rows]).update(enqueued_at=now or timezone.now())
    _send((row.pk, job_lane(row), row.kind) for row in lanes.portal_round_robin(rows))


def _held_unblocked(due: Q) -> list[Job]:
    """The oldest held job of each (portal, kind) that has no unheld job open any more: nobody
    else will publish it. It is published unheld, so it carries its chain on."""
    pairs = Job.objects.filter(due, payload__held=True).values_list("portal_id", "kind").distinct()
    found = []
    for portal_id, kind in pairs:
        siblings = Job.objects.filter(
            portal_id=portal_id, kind=kind, state__in=(*OPEN, Job.State.RUNNING)
        )
        if siblings.filter(_unheld()).exists():
            continue
        job = siblings.filter(due, payload__held=True).order_by("pk").first()
        if job is None:
            continue
        job.payload = {**job.payload, HELD: False}
        if Job.objects.filter(pk=job.pk, payload__held=True).update(payload=job.payload):
            found.append(job)
    return found


def _due_again(now: Any) -> dict[str, Any]:
    """A job due now with a fresh horizon (resumed or retried by a person), handed over."""
    return {
        "state": Job.State.PENDING,
        "next_attempt_at": now,
        "enqueued_at": now,
        "first_attempt_at": None,
        "pause_key": "",
        "updated_at": now,
    }


def jobs_resume(*, portal: Any, pause_key: str) -> int:
    """The cause of a pause is fixed: make that portal's paused jobs due now."""
    now = timezone.now()
    paused = Job.objects.filter(portal=portal, state=Job.State.PAUSED, pause_key=pause_key)
    ids = list(paused.values_list("pk", flat=True))
    Job.objects.filter(pk__in=ids, state=Job.State.PAUSED).update(**_due_again(now))
    for job in Job.objects.filter(pk__in=ids).only("pk", "kind", "payload"):
        _send_after_commit(job.pk, job_lane(job), job.kind)
    if ids:
        logger.info("resumed paused jobs", extra={"count": len(ids), "pause_key": pause_key})
    return len(ids)


def jobs_cancel(*, portal: Any, reason: str) -> int:
    """Stop all open work of a portal (uninstall)."""
    now = timezone.now()
    return Job.objects.filter(
        portal=portal, state__in=[Job.State.PENDING, Job.State.RETRYING, Job.State.PAUSED]
    ).update(state=Job.State.CANCELLED, last_error=reason[:2000], finished_at=now, updated_at=now)


def job_retry_now(*, job: Job) -> Job:
    """A person asked to try a dead, paused or waiting job again: fresh horizon, due now."""
    if job.state in (Job.State.SUCCEEDED, Job.State.RUNNING, Job.State.CANCELLED):
        raise ValueError(f"job {job.pk} is {job.state}; only open or dead jobs can be retried")
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(**_due_again(now), finished_at=None)
    _send_after_commit(job.pk, job_lane(job), job.kind)
    job.refresh_from_db()
    return job


def jobs_prune_succeeded(*, kind: str, key_prefix: str, keep: int) -> int:
    """Delete the succeeded jobs of `kind` whose key starts with `key_prefix`, all but the
    newest `keep` (their attempt rows go with them). Returns how many jobs were deleted.

    For periodic work that leaves a row per run and means nothing once it succeeded (a campaign's
    tick: docs/campaigns.md, "Tick rows"). Failed, dead and open jobs are never touched: errors
    are data the pages show.
    """
    settled = Job.objects.filter(
        kind=kind, state=Job.State.SUCCEEDED, idempotency_key__startswith=key_prefix
    ).order_by("-pk")
    # Bounded per call: a backlog left by an older version is worked off over a few runs.
    old = list(settled.values_list("pk", flat=True)[max(0, keep) : max(0, keep) + 500])
    if not old:
        return 0
    JobAttempt.objects.filter(job_id__in=old).delete()
    deleted, _ = Job.objects.filter(pk__in=old, state=Job.State.SUCCEEDED).delete()
    return deleted
