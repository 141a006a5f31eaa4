"""Delivery of `Notification` rows: Bitrix24 notices, e-mail for critical failures, daily digest.

`alerts.notification_raise` stores the row and, after commit, turns it into the jobs below
(their table is notifications/flow.py), so delivery retries through the job system and a failing Bitrix24 (the very thing being
reported, sometimes) cannot lose the row:
- `notification.deliver`: `im.notify.system.add` to the affected user or the portal's chosen
  recipients, TAG = the row's tag (a repeat replaces the notice instead of piling up).
- `notification.email`: once per open row, to PortalOptions.stakeholder_emails, for the critical
  kinds (Unitalk key refused, portal suspended, dead jobs). Separate from the Bitrix24 notice
  because the portal being unreachable is one of the reasons to e-mail.
- `notification.digest`: a daily summary per portal that asked for it (beat task below).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Count
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from bitrixapp.models import Portal, portal_options
from integration import jobs
from integration.bitrix import notify
from integration.calls.models import FailedCall
from integration.core import alerts, messages
from integration.core.alerts import (
    DEAD_JOBS_KIND,
    DEAD_JOBS_TAG,
    DELIVERY_KINDS,
    KIND_DIGEST,
)
from integration.core.errors import PermanentError
from integration.models import Job, Notification

logger = logging.getLogger(__name__)


def notification_recipients(*, notification: Notification) -> list[int]:
    """Bitrix24 user ids to tell: the user, or the chosen ones, or the installing admin.

    Bitrix24 REST has no "list administrators" filter (docs/bitrix24.md §7.4), so without a
    choice on the settings page the admin who installed the app is told.
    """
    if notification.audience == Notification.Audience.USER and notification.user_id:
        return [int(notification.user_id)]
    chosen = [int(u) for u in portal_options(notification.portal).notify_user_ids if int(u) > 0]
    if chosen:
        return chosen
    installer = notification.portal.installed_by_user_id
    return [int(installer)] if installer else []


def notification_text(*, notification: Notification) -> str:
    """The notice in the recipients' language (the portal's, which its admins set by using the
    app): title and what to do, rendered from the message code. Technical detail stays out."""
    shown = messages.notification_render(notification, lang=notification.portal.lang or "en")
    return f"[b]{shown.title}[/b]\n{shown.text}"


def notification_deliver(*, notification_id: int) -> dict[str, Any]:
    """Send the row to its recipients in Bitrix24; a resolved or delivered row is left alone.

    Raises the Bitrix24 client's errors (the job retries, pauses or dead-letters on them) and
    PermanentError when nobody can be told.
    """
    row = Notification.objects.select_related("portal").filter(pk=notification_id).first()
    if row is None or row.resolved_at is not None:
        return {"skipped": "resolved"}
    if row.delivered_at is not None and row.delivered_at >= row.updated_at:
        return {"skipped": "delivered"}
    users = notification_recipients(notification=row)
    if not users:
        raise PermanentError("nobody to notify: choose recipients on the settings page")
    text = notification_text(notification=row)
    for user_id in users:
        notify.notify_system_add(row.portal, user_id=user_id, message=text, tag=row.tag)
    Notification.objects.filter(pk=row.pk).update(delivered_at=timezone.now())
    return {"users": users}


def notification_email(*, notification_id: int) -> dict[str, Any]:
    """E-mail a critical row to the portal's stakeholders, once per open row."""
    row = Notification.objects.select_related("portal").filter(pk=notification_id).first()
    if row is None or row.resolved_at is not None or row.emailed_at is not None:
        return {"skipped": True}
    to = portal_options(row.portal).stakeholder_email_list
    if not to:
        return {"skipped": "no stakeholder e-mail addresses"}
    with translation.override(row.portal.lang or "en"):
        shown = messages.notification_render(row)
        subject = f"[{row.portal.domain}] {shown.title}"
        body = "\n\n".join(
            [
                shown.text,
                _("Open the Unitalk app in Bitrix24 to fix it: %(url)s")
                % {"url": f"{row.portal.client_endpoint.removesuffix('/rest/')}/marketplace/"},
                _("Technical details (for support): %(detail)s") % {"detail": row.message},
            ]
        )
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    Notification.objects.filter(pk=row.pk).update(emailed_at=timezone.now())
    return {"to": len(to)}


def digest_build(*, portal: Portal, now: Any = None) -> tuple[str, str]:
    """(subject, body) of the daily summary: new failed-call items, open items, open problems."""
    now = now or timezone.now()
    since = now - timedelta(days=1)
    new = dict(
        FailedCall.objects.filter(portal=portal, created_at__gte=since)
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    open_now = dict(
        FailedCall.objects.filter(portal=portal, state__in=("open", "retrying"))
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    problems = list(Notification.objects.filter(portal=portal, resolved_at__isnull=True))
    dead = Job.objects.filter(portal=portal, state=Job.State.DEAD, finished_at__gte=since).count()
    with translation.override(portal.lang or "en"):
        lines = [
            _("Unitalk for Bitrix24: the last 24 hours on %(domain)s") % {"domain": portal.domain},
            "",
        ]
        for kind in FailedCall.Kind.values:
            lines.append(
                _("%(label)s: %(new)d new, %(open)d open")
                % {
                    "label": _kind_label(kind),
                    "new": new.get(kind, 0),
                    "open": open_now.get(kind, 0),
                }
            )
        lines.append(_("Work that failed for good: %(n)d") % {"n": dead})
        lines.append("")
        lines.append(_("Open problems: %(n)d") % {"n": len(problems)})
        lines += [
            f"- {shown.title}: {shown.text}"
            for shown in (messages.notification_render(p) for p in problems)
        ]
        subject = _("Daily summary for %(domain)s") % {"domain": portal.domain}
    return subject, "\n".join(lines)


def _kind_label(kind: str) -> str:
    labels: dict[str, str] = {
        FailedCall.Kind.DIAL_FAILED: _("Calls that could not be placed"),
        FailedCall.Kind.MISSED: _("Missed calls to call back"),
        FailedCall.Kind.CRM_SYNC_FAILED: _("Calls not saved in the CRM"),
    }
    return labels.get(kind, kind)


def digest_send(*, portal_id: int) -> dict[str, Any]:
    portal = Portal.objects.get(pk=portal_id)
    to = portal_options(portal).stakeholder_email_list
    if not to:
        return {"skipped": "no stakeholder e-mail addresses"}
    subject, body = digest_build(portal=portal)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    return {"to": len(to)}


def digests_enqueue(*, now: Any = None) -> int:
    """Beat (hourly): from NOTIFY_DIGEST_HOUR_UTC on, one digest job per portal per day."""
    now = now or timezone.now()
    if now.hour < settings.NOTIFY_DIGEST_HOUR_UTC:
        return 0
    count = 0
    portals = Portal.objects.filter(
        status=Portal.Status.ACTIVE, options__daily_digest=True
    ).exclude(options__stakeholder_emails="")
    for portal in portals:
        jobs.job_enqueue(
            kind=KIND_DIGEST,
            key=f"{KIND_DIGEST}:{portal.pk}:{now.date().isoformat()}",
            portal=portal,
            subject=f"portal:{portal.pk}",
            payload={"portal_id": portal.pk},
        )
        count += 1
    return count


# --- what follows a job -----------------------------------------------------------------------


def dead_job_problem(job: Job, state: str) -> None:
    """A dead job is a problem for the admins (one open row, counted), except our own kinds.

    The problem closes itself once the portal has no dead jobs left (retried successfully).
    """
    if job.portal_id is None or job.kind in DELIVERY_KINDS:
        return
    if state == Job.State.SUCCEEDED:
        # A job dies only after an attempt, so one that succeeded at its first was never dead
        # and leaves the count as it was: nothing to check (issue 17, a call's queries). Else
        # one statement, not a count and then an update.
        if job.attempts <= 1:
            return
        alerts.notification_resolve(
            portal=job.portal_id,
            tag=DEAD_JOBS_TAG,
            unless=Job.objects.filter(portal_id=job.portal_id, state=Job.State.DEAD),
        )
        return
    if state != Job.State.DEAD:
        return
    alerts.notification_raise(
        portal=job.portal,
        kind=DEAD_JOBS_KIND,
        tag=DEAD_JOBS_TAG,
        message=f"{job.kind} ({job.subject or job.pk}) failed for good: {job.last_error[:300]}",
        context={"job": job.pk, "kind": job.kind},
        params={"n": Job.objects.filter(portal_id=job.portal_id, state=Job.State.DEAD).count()},
    )


@shared_task(name="integration.notifications_digest", ignore_result=True)
def notifications_digest() -> None:
    digests_enqueue()
