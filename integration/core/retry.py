"""When to try again: exponential backoff with full jitter, capped, within a horizon.

One policy for every job. Transient failures back off `base * 2**attempt` seconds (capped at
`cap`), with full jitter (a uniform draw between 0 and that) so that a burst of failures does not
come back as a burst of retries. Past the horizon a job is dead-lettered for a person to look at.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from integration.core.errors import (
    AuthExpiredError,
    IntegrationError,
    PausedError,
    RateLimitedError,
)

RETRY = "retry"
PAUSE = "pause"
DEAD = "dead"


@dataclass(frozen=True)
class Policy:
    base_s: float = 2.0
    cap_s: float = 600.0
    horizon: timedelta = timedelta(hours=6)
    #: Unknown exceptions (bugs, not provider failures) get a few tries, then a person looks.
    max_unclassified_attempts: int = 5


def default_policy() -> Policy:
    return Policy(
        base_s=getattr(settings, "JOB_BACKOFF_BASE_S", 2.0),
        cap_s=getattr(settings, "JOB_BACKOFF_CAP_S", 600.0),
        horizon=timedelta(seconds=getattr(settings, "JOB_RETRY_HORIZON_S", 6 * 3600)),
    )


@dataclass(frozen=True)
class Decision:
    action: str  # RETRY, PAUSE or DEAD
    delay_s: float = 0.0
    pause_key: str = ""


def backoff_delay(attempt: int, policy: Policy, rng: random.Random | None = None) -> float:
    """Full-jitter delay before retry number `attempt` (1-based)."""
    ceiling = min(policy.cap_s, policy.base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0, ceiling)


def decide(
    error: BaseException,
    *,
    attempt: int,
    first_attempt_at: datetime,
    now: datetime,
    policy: Policy | None = None,
    rng: random.Random | None = None,
) -> Decision:
    """What the job runner does after attempt number `attempt` failed with `error`."""
    policy = policy or default_policy()
    if isinstance(error, PausedError):
        return Decision(PAUSE, pause_key=error.pause_key)
    if isinstance(error, IntegrationError) and not error.retryable:
        return Decision(DEAD)
    if not isinstance(error, IntegrationError) and attempt >= policy.max_unclassified_attempts:
        return Decision(DEAD)
    if isinstance(error, RateLimitedError) and (
        getattr(error, "precise", False) or getattr(error, "service", "") == "ratelimit"
    ):
        # A wait we chose ourselves (our shared budget knows when a slot frees; a click's
        # quick retries): a few per cent of jitter, so the schedule stays what was planned.
        delay = error.retry_after + (rng or random).uniform(0, 0.01 + error.retry_after / 20)
    elif isinstance(error, RateLimitedError):
        # Told how long to wait: wait that, plus a little jitter so waiters do not stampede.
        delay = error.retry_after + (rng or random).uniform(
            0, min(5.0, error.retry_after / 4 + 0.5)
        )
    elif isinstance(error, AuthExpiredError):
        # The client already refreshed and retried once; try again soon, not at once.
        delay = backoff_delay(1, policy, rng)
    else:
        delay = backoff_delay(attempt, policy, rng)
    if now + timedelta(seconds=delay) > first_attempt_at + policy.horizon:
        return Decision(DEAD)
    return Decision(RETRY, delay_s=delay)
