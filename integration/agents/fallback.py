"""Telling people when status sync fails, and taking it back when it works again
(docs/agents.md §5.1, failure table).

Reuses the notification machinery (integration.alerts rows, integration.delivery jobs,
bitrix/notify.py): one open row per (agent, audience), so a failure that repeats every retry
adds no notices. The Bitrix24 TAG is per agent (`unitalk-status:<user>`, the manager's copy
`unitalk-status:<user>:manager`): im.notify replaces a notice with the same TAG
(docs/bitrix24.md §7.1), which is also how the notice is cleared on recovery — a short
"working again" notice replaces it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _

from bitrixapp.models import Portal
from integration import jobs
from integration.agents.models import AgentState, AgentSync
from integration.bitrix import notify
from integration.core import alerts
from integration.models import Job, Notification
from integration.notifications import delivery

logger = logging.getLogger(__name__)

KIND_SYNC_FAILED = "agents.sync_failed"
KIND_POLL_FAILED = "agents.poll_failed"
KIND_NOTICE_CLEAR = "agents.notice_clear"
TAG_POLL = "agents:poll"


def agent_tag(agent: AgentState) -> str:
    return f"unitalk-status:{agent.bitrix_user_id}"


def manager_tag(agent: AgentState) -> str:
    return f"{agent_tag(agent)}:manager"


def _open(portal: Any, tag: str) -> bool:
    return Notification.objects.filter(portal=portal, tag=tag, resolved_at__isnull=True).exists()


def sync_problem_raise(*, agent: AgentState, error: str) -> int:
    """The agent is PAUSED(sync_failed): tell them and their manager once. Returns notices made."""
    portal = agent.portal
    # Stored as message codes (integration/core/messages.py): each reader gets their language;
    # the error itself is the technical detail behind "Details".
    detail = error[:500]
    made = 0
    context = {"agent": agent.bitrix_user_id, "line": agent.line}
    if not _open(portal, agent_tag(agent)):
        alerts.notification_raise(
            portal=portal,
            kind=KIND_SYNC_FAILED,
            tag=agent_tag(agent),
            user_id=agent.bitrix_user_id,
            message=detail,
            severity=Notification.Severity.WARNING,
            context=context,
        )
        made += 1
    if not _open(portal, manager_tag(agent)):
        # No department head: the portal's problem-notice recipients (audience admins).
        alerts.notification_raise(
            portal=portal,
            kind=KIND_SYNC_FAILED,
            tag=manager_tag(agent),
            user_id=agent.manager_user_id or None,
            message=detail,
            params={"name": agent.name or str(agent.bitrix_user_id)},
            severity=Notification.Severity.WARNING,
            context=context,
        )
        made += 1
    return made


def sync_problem_resolve(*, agent: AgentState) -> int:
    """Sync works again: close both rows and replace both Bitrix24 notices."""
    portal = agent.portal
    resolved = 0
    for tag in (agent_tag(agent), manager_tag(agent)):
        row = Notification.objects.filter(portal=portal, tag=tag, resolved_at__isnull=True).first()
        if row is None:
            continue
        resolved += alerts.notification_resolve(portal=portal, tag=tag)
        if (
            row.delivered_at is not None
            or Job.objects.filter(
                kind="notification.deliver", subject=f"notification:{row.pk}"
            ).exists()
        ):
            _clear_enqueue(row)
    return resolved


def _clear_enqueue(row: Notification) -> None:
    jobs.job_enqueue(
        kind=KIND_NOTICE_CLEAR,
        key=f"{KIND_NOTICE_CLEAR}:{row.pk}",
        portal=row.portal,
        subject=f"notification:{row.pk}",
        payload={"notification_id": row.pk},
    )


def notice_clear(*, notification_id: int) -> dict[str, Any]:
    """Job: replace the problem notice (same TAG) with "working again" for its recipients."""
    row = Notification.objects.select_related("portal").get(pk=notification_id)
    if row.resolved_at is None:
        return {"skipped": "open again"}
    users = delivery.notification_recipients(notification=row)
    with translation.override(row.portal.lang or "en"):
        text = _("Unitalk status sync works again; the autodialer includes this agent again.")
    for user_id in users:
        notify.notify_system_add(row.portal, user_id=user_id, message=text, tag=row.tag)
    return {"users": users}


def poll_problem_raise(*, portal: Portal, sync: AgentSync) -> None:
    alerts.notification_raise(
        portal=portal,
        kind=KIND_POLL_FAILED,
        tag=TAG_POLL,
        message=sync.last_poll_error[:500],
        params={"n": sync.poll_failures},
        severity=Notification.Severity.WARNING,
    )


def poll_problem_resolve(*, portal: Portal) -> None:
    alerts.notification_resolve(portal=portal, tag=TAG_POLL)
