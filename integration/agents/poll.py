"""The per-portal poll (docs/agents.md §5.1 item 1): Bitrix24 sends REST apps no time-tracking
event (§1.1), so work days are read with `timeman.status` in batches of 50, users with
`user.get` every few minutes, `timeman.settings` daily and when a mapping changes.

Every request goes through the portal's shared leaky bucket (integration.bitrix.client), like
call logging; one poll of 200 agents costs 4 slots. Bad answers end in a defined state with a
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
from integration.core.errors import IntegrationError
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
    sync.settings_polled_at = now


def _read_users(portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime):
    answer = timeman.users_many(portal, [a.bitrix_user_id for a in agents])
    departments: dict[int, list[int]] = {}
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
            ids = (
                [d for d in (inputs.positive_id_or_none(x) for x in depts) if d]
                if isinstance(depts, list)
                else []
            )
            departments[agent.pk] = ids
        agent.users_checked_at = now
        AgentState.objects.filter(pk=agent.pk).update(
            user_missing=agent.user_missing,
            user_active=agent.user_active,
            user_online=agent.user_online,
            name=agent.name,
            users_checked_at=now,
        )
    wanted = {d for ids in departments.values() for d in ids}
    heads = timeman.department_heads(portal, wanted)
    for agent in agents:
        if agent.pk not in departments:
            continue
        manager = next(
            (
                heads[d]
                for d in departments[agent.pk]
                if heads.get(d, agent.bitrix_user_id) != agent.bitrix_user_id
            ),
            None,
        )
        AgentState.objects.filter(pk=agent.pk).update(
            manager_user_id=manager, departments=departments[agent.pk]
        )
        agent.manager_user_id, agent.departments = manager, departments[agent.pk]
    sync.users_polled_at = now
    return len(wanted)


def _read_status(portal: Portal, sync: AgentSync, agents: list[AgentState], now: datetime):
    answer = timeman.status_many(portal, [a.bitrix_user_id for a in agents])
    if answer.module_missing():
        sync.timeman_missing = True
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


def agents_poll(*, portal: Portal, now: datetime | None = None) -> dict[str, Any]:
    """One poll of a portal's agents. Never raises for Bitrix24's answers (they are data)."""
    now = now or timezone.now()
    services.agents_roster_sync(portal=portal)
    sync = services.agent_sync_get(portal=portal)
    agents = list(AgentState.objects.filter(portal=portal).exclude(line="").order_by("pk"))
    sync.last_poll_at = now
    read: dict[str, int] = {}
    try:
        due_settings = [a for a in agents if a.settings_checked_at is None]
        if _due(sync.settings_polled_at, settings.AGENT_SETTINGS_EVERY_S, now):
            due_settings = agents
        if due_settings:
            _read_settings(portal, sync, due_settings, now)
            read["settings"] = len(due_settings)
        if agents and _due(sync.users_polled_at, settings.AGENT_USERS_EVERY_S, now):
            read["departments"] = _read_users(portal, sync, agents, now)
            read["users"] = len(agents)
        if agents:
            _read_status(portal, sync, agents, now)
            read["status"] = len(agents)
    except IntegrationError as exc:
        sync.poll_failures += 1
        sync.last_poll_error = str(exc)[:2000]
        sync.save(update_fields=POLL_FIELDS)
        logger.warning("agent poll failed (%d in a row): %s", sync.poll_failures, exc)
        changed = services.agents_refresh(portal=portal, source="stale", now=now)
        if services.sync_stale(sync=sync):
            fallback.poll_problem_raise(portal=portal, sync=sync)
        return {"failed": str(exc)[:200], "failures": sync.poll_failures, "changed": changed}
    recovered = sync.poll_failures > 0
    sync.poll_failures = 0
    sync.last_poll_error = ""
    sync.last_poll_ok_at = now
    sync.save(update_fields=POLL_FIELDS)
    if recovered:
        fallback.poll_problem_resolve(portal=portal)
    changed = services.agents_refresh(portal=portal, source="poll", now=now)
    # Request slots spent: one per batch of 50 commands (docs/bitrix24.md §2.5).
    slots = sum(-(-n // timeman.MAX_COMMANDS) for n in read.values())
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
