"""The per-portal poll (docs/agents.md §5.1 item 1): Bitrix24 sends REST apps no time-tracking
event (§1.1), so work days are read with `timeman.status` in batches of 50, users with
`user.get` every few minutes, `timeman.settings` daily and when a mapping changes.

Every request goes through the portal's shared leaky bucket (integration.bitrix.client), like
call logging; one poll of 200 agents costs 4 slots. A background job gets one slot per turn
while a drain shares the bucket (integration/core/ratelimit.py), so a poll is a series of
one-request steps, each saved as it is answered: when the budget says "later" the job comes
back at its turn and goes on with the agents not yet read, instead of starting over (which
never finished under a call-sync backlog: bench/agent_status.py). A budget wait is not a
failed poll: no failure count, no notice. Bad answers end in a defined state with a
reason (never an exception); a whole poll that fails is counted, and after AGENT_STALE_PERIODS
failures in a row the agents are stale: PAUSED(sync_failed) for the dialer and the admins told.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from bitrixapp.models import Portal
from integration import jobs
from integration.agents import fallback, services
from integration.agents.models import AgentState, AgentSync
from integration.bitrix import timeman
from integration.core import inputs
from integration.core.errors import IntegrationError, RateLimitedError
from integration.unitalk.models import UnitalkConnection

logger = logging.getLogger(__name__)

KIND_POLL = "agents.poll"
#: The AgentSync fields a poll owns: saved alone, so an admin's switch set meanwhile stays.
POLL_FIELDS = [
    "timeman_missing",
    "poll_failures",
    "last_poll_at",
    "last_poll_ok_at",
    "last_poll_error",
    "users_polled_at",
    "settings_polled_at",
    "updated_at",
]


def _bool(value: Any) -> bool | None:
    """Bitrix24 booleans come as true/false, "Y"/"N", 1/0; anything else is unknown."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().upper()
    if text in ("Y", "1", "TRUE"):
        return True
    if text in ("N", "0", "FALSE", ""):
        return False
    return None


def _stamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _not_found(error: dict[str, Any]) -> bool:
    return timeman.USER_NOT_FOUND.lower() in str(error.get("error_description", "")).lower()


# --- readings -----------------------------------------------------------------------------------


def _read_settings(portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime):
    answer = timeman.settings_many(portal, [a.bitrix_user_id for a in agents])
    sync.timeman_missing = answer.module_missing()
    sync.save(update_fields=["timeman_missing", "updated_at"])
    for agent in agents:
        row = answer.results.get(agent.bitrix_user_id)
        error = answer.errors.get(agent.bitrix_user_id)
        if isinstance(row, dict):
            agent.time_tracking = _bool(row.get("UF_TIMEMAN"))
        elif error and _not_found(error):
            agent.user_missing = True
        else:
            # Unknown answer: Bitrix24's default (tracking on) until the next reading.
            agent.time_tracking = None
        agent.settings_checked_at = now
        AgentState.objects.filter(pk=agent.pk).update(
            time_tracking=agent.time_tracking,
            user_missing=agent.user_missing,
            settings_checked_at=now,
        )


def _read_users(portal: Portal, agents: list[AgentState], now: datetime) -> None:
    answer = timeman.users_many(portal, [a.bitrix_user_id for a in agents])
    for agent in agents:
        rows = answer.results.get(agent.bitrix_user_id)
        user = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else None
        error = answer.errors.get(agent.bitrix_user_id)
        if user is None and error is not None and not _not_found(error):
            # An error we do not understand: keep what we knew (the next reading decides).
            logger.warning("user.get failed for one agent: %s", error.get("error"))
        elif user is None:
            # No such user any more (deleted, or left): never someone to dial.
            agent.user_missing = True
        else:
            agent.user_missing = False
            agent.user_active = _bool(user.get("ACTIVE"))
            agent.user_online = _bool(user.get("IS_ONLINE"))
            name = " ".join(str(user.get(k) or "") for k in ("NAME", "LAST_NAME")).strip()
            agent.name = name[:255] or agent.name
            depts = user.get("UF_DEPARTMENT") or []
            agent.departments = (
                [d for d in (inputs.positive_id_or_none(x) for x in depts) if d]
                if isinstance(depts, list)
                else []
            )
        agent.users_checked_at = now
        AgentState.objects.filter(pk=agent.pk).update(
            user_missing=agent.user_missing,
            user_active=agent.user_active,
            user_online=agent.user_online,
            name=agent.name,
            departments=agent.departments,
            users_checked_at=now,
        )


def _read_managers(portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime):
    """Each agent's manager: the head of their first department who is not themselves."""
    wanted = {d for agent in agents for d in agent.departments or []}
    heads = timeman.department_heads(portal, wanted)
    for agent in agents:
        manager = next(
            (
                heads[d]
                for d in agent.departments or []
                if heads.get(d, agent.bitrix_user_id) != agent.bitrix_user_id
            ),
            None,
        )
        if manager != agent.manager_user_id:
            AgentState.objects.filter(pk=agent.pk).update(manager_user_id=manager)
            agent.manager_user_id = manager
    sync.users_polled_at = now
    return len(wanted)


def _read_status(portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime):
    answer = timeman.status_many(portal, [a.bitrix_user_id for a in agents])
    if answer.module_missing() and not sync.timeman_missing:
        sync.timeman_missing = True
        sync.save(update_fields=["timeman_missing", "updated_at"])
    for agent in agents:
        row = answer.results.get(agent.bitrix_user_id)
        error = answer.errors.get(agent.bitrix_user_id)
        if isinstance(row, dict):
            status = str(row.get("STATUS") or "").upper()[:16] or "UNKNOWN"
            since = _stamp(row.get("TIME_FINISH") or row.get("TIME_START"))
        elif error and _not_found(error):
            agent.user_missing = True
            status, since = agent.timeman_status, agent.timeman_since
        else:
            status, since = "UNKNOWN", None
        agent.timeman_status, agent.timeman_since, agent.polled_at = status, since, now
        AgentState.objects.filter(pk=agent.pk).update(
            timeman_status=status,
            timeman_since=since,
            polled_at=now,
            user_missing=agent.user_missing,
        )


def _due(last: datetime | None, every_s: float, now: datetime) -> bool:
    return last is None or last + timedelta(seconds=every_s) <= now


def _chunks(agents: list[AgentState]) -> list[list[AgentState]]:
    size = timeman.MAX_COMMANDS
    return [agents[i : i + size] for i in range(0, len(agents), size)]


def _poll_steps(
    portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime, since: datetime | None
):
    """The readings due now, one request each, in order; yields (what, how many, the agents
    read) as each is saved. An agent this poll read at or after `since` (when the job began,
    before a budget wait) is not read again."""

    def unread(stamp: datetime | None) -> bool:
        return since is None or stamp is None or stamp < since

    settings_every = settings.AGENT_SETTINGS_EVERY_S
    for chunk in _chunks([a for a in agents if _due(a.settings_checked_at, settings_every, now)]):
        _read_settings(portal, sync, chunk, now)
        yield "settings", len(chunk), chunk
    sync.settings_polled_at = now
    if _due(sync.users_polled_at, settings.AGENT_USERS_EVERY_S, now):
        for chunk in _chunks([a for a in agents if unread(a.users_checked_at)]):
            _read_users(portal, chunk, now)
            yield "users", len(chunk), chunk
        yield "departments", _read_managers(portal, sync, agents, now), agents
    stalest = sorted(agents, key=lambda a: (a.polled_at is not None, a.polled_at or now))
    for chunk in _chunks([a for a in stalest if unread(a.polled_at)]):
        _read_status(portal, sync, chunk, now)
        yield "status", len(chunk), chunk


def _poll_failed(
    portal: Portal, sync: AgentSync, exc: IntegrationError, now: datetime
) -> dict[str, Any]:
    sync.poll_failures += 1
    sync.last_poll_error = str(exc)[:2000]
    sync.save(update_fields=POLL_FIELDS)
    logger.warning("agent poll failed (%d in a row): %s", sync.poll_failures, exc)
    changed = services.agents_refresh(portal=portal, source="stale", now=now)
    if services.sync_stale(sync=sync):
        fallback.poll_problem_raise(portal=portal, sync=sync)
    return {"failed": str(exc)[:200], "failures": sync.poll_failures, "changed": changed}


def agents_poll(
    *, portal: Portal, now: datetime | None = None, since: datetime | None = None
) -> dict[str, Any]:
    """One poll of a portal's agents. Never raises for Bitrix24's answers (they are data); a
    budget wait (RateLimitedError) is raised after saving what was read, so the job resumes
    from there: `since` is when the job began.

    Transitions are stamped when the readings are in (`learned()`), not when the poll began:
    the requests take seconds under faults and budget waits, and a transition dated before the
    app could know it would claim the dialer ignored a pause (docs/agents.md §5.1, item 5)."""
    given = now

    def learned() -> datetime:
        return given if given is not None else timezone.now()

    now = learned()
    services.agents_roster_sync(portal=portal)
    sync = services.agent_sync_get(portal=portal)
    agents = list(
        AgentState.objects.filter(portal=portal)
        .exclude(line="")
        .select_related("portal")
        .order_by("pk")
    )
    sync.last_poll_at = now
    read: dict[str, int] = {}
    slots = 0
    touched: dict[int, AgentState] = {}
    try:
        for what, count, chunk in _poll_steps(portal, sync, agents, now, since):
            touched.update((a.pk, a) for a in chunk)
            read[what] = read.get(what, 0) + count
            # Request slots spent: one per batch of 50 commands (docs/bitrix24.md §2.5).
            slots += -(-count // timeman.MAX_COMMANDS)
    except RateLimitedError as exc:
        if exc.service != "ratelimit":
            return _poll_failed(portal, sync, exc, learned())  # Bitrix24's own 503: it failed
        sync.save(update_fields=POLL_FIELDS)
        services.agents_refresh(
            portal=portal, source="poll", now=learned(), agents=touched.values()
        )
        raise
    except IntegrationError as exc:
        return _poll_failed(portal, sync, exc, learned())
    recovered = sync.poll_failures > 0
    sync.poll_failures = 0
    sync.last_poll_error = ""
    sync.last_poll_ok_at = now
    sync.save(update_fields=POLL_FIELDS)
    if recovered:
        fallback.poll_problem_resolve(portal=portal)
    changed = services.agents_refresh(portal=portal, source="poll", now=learned())
    return {"agents": len(agents), "read": read, "requests": slots, "changed": changed}


# --- scheduling -------------------------------------------------------------------------------


def in_working_hours(*, portal: Portal, now: datetime) -> bool:
    tz_name = (
        UnitalkConnection.objects.filter(portal=portal).values_list("timezone", flat=True).first()
        or settings.UNITALK_DEFAULT_TIMEZONE
    )
    try:
        local = now.astimezone(ZoneInfo(tz_name))
    except (KeyError, ValueError):
        local = now
    return settings.AGENT_WORK_START_HOUR <= local.hour < settings.AGENT_WORK_END_HOUR


def poll_period(*, portal: Portal, now: datetime) -> float:
    working = in_working_hours(portal=portal, now=now)
    return float(settings.AGENT_POLL_WORK_S if working else settings.AGENT_POLL_OFF_S)


def agents_poll_enqueue_all(*, now: datetime | None = None) -> int:
    """Beat (every AGENT_POLL_TICK_S): a poll job for each portal whose period has passed.

    Keyed by (portal, period slot): a beat running twice, or two beats, add no work.
    """
    now = now or timezone.now()
    count = 0
    if not settings.AGENT_POLL_ENABLED:
        return 0
    portals = Portal.objects.filter(
        status=Portal.Status.ACTIVE, operator_mappings__isnull=False
    ).distinct()
    for portal in portals:
        period = poll_period(portal=portal, now=now)
        last = AgentSync.objects.filter(portal=portal).values_list("last_poll_at", flat=True)
        last_at = last.first()
        if last_at is not None and last_at + timedelta(seconds=period * 0.9) > now:
            continue
        slot = int(now.timestamp() // max(1.0, period))
        jobs.job_enqueue(
            kind=KIND_POLL,
            key=f"{KIND_POLL}:{portal.pk}:{int(period)}:{slot}",
            portal=portal,
            subject=f"portal:{portal.pk}",
            payload={"portal_id": portal.pk},
        )
        count += 1
    return count


def poll_now_enqueue(*, portal: Portal) -> Any:
    """A person asked for a fresh reading (retry on the panel): one poll job now."""
    return jobs.job_enqueue(
        kind=KIND_POLL,
        key=f"{KIND_POLL}:{portal.pk}:now:{timezone.now().timestamp():.0f}",
        portal=portal,
        subject=f"portal:{portal.pk}",
        payload={"portal_id": portal.pk},
    )
