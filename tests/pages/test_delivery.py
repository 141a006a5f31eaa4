"""Notification rows reach people: Bitrix24 notices with a TAG, e-mail for critical problems,
a daily digest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from bitrixapp.models import PortalOptions, portal_options
from integration import jobs
from integration.core import alerts
from integration.core.errors import PermanentError
from integration.models import Job, Notification
from integration.notifications import delivery
from tests.integration.bitrix.fixtures import REST, ok, rest_body
from tests.pages.conftest import open_item, test_work_outcome

pytestmark = pytest.mark.django_db(transaction=True)


def run(kind: str) -> list[Job]:
    ran = list(Job.objects.filter(kind=kind, state=Job.State.PENDING))
    for job in ran:
        jobs.job_execute(job_id=job.pk)
    return [Job.objects.get(pk=j.pk) for j in ran]


def notices(rsps) -> list[dict]:
    return [rest_body(c) for c in rsps.calls if c.request.url.endswith("im.notify.system.add")]


@pytest.fixture
def notify_ok(rsps):
    rsps.post(REST + "im.notify.system.add", json=ok(101))
    return rsps


@pytest.fixture
def stakeholders(portal):
    options = portal_options(portal)
    options.stakeholder_emails = "boss@example.com, ops@example.com"
    options.save()
    return options


def raise_credentials(portal, key="****1234"):
    return alerts.notification_raise(
        portal=portal,
        kind="unitalk.credentials_invalid",
        tag="unitalk:credentials-invalid",
        message=f"unitalk users/list: Authorization invalid ({key})",
        params={"key": key},
    )


def test_admin_problem_is_sent_to_the_chosen_users_with_its_tag(portal, notify_ok):
    # given
    options = portal_options(portal)
    options.notify_user_ids = [1, 4]
    options.save()
    # when
    row = raise_credentials(portal)
    run(alerts.KIND_DELIVER)
    # then
    sent = notices(notify_ok)
    assert [s["USER_ID"] for s in sent] == [1, 4]
    assert {s["TAG"] for s in sent} == {"unitalk:unitalk:credentials-invalid"}
    assert "****1234" in sent[0]["MESSAGE"]
    # the technical detail stays out of the notice (logs and the page's "details" only)
    assert "users/list" not in sent[0]["MESSAGE"]
    row.refresh_from_db()
    assert row.delivered_at is not None


def test_without_a_choice_the_installing_admin_is_told(portal, notify_ok):
    portal.installed_by_user_id = 3
    portal.save()
    raise_credentials(portal)
    run(alerts.KIND_DELIVER)
    assert [s["USER_ID"] for s in notices(notify_ok)] == [3]


def test_a_users_own_problem_goes_to_that_user_only(portal, notify_ok):
    alerts.notification_raise(portal=portal, kind="calls.dial_failed", message="no", user_id=9)
    run(alerts.KIND_DELIVER)
    assert [s["USER_ID"] for s in notices(notify_ok)] == [9]


def test_a_repeat_is_delivered_again_under_the_same_tag(portal, notify_ok):
    portal.installed_by_user_id = 1
    portal.save()
    raise_credentials(portal, "****aaaa")
    run(alerts.KIND_DELIVER)
    raise_credentials(portal, "****bbbb")
    run(alerts.KIND_DELIVER)
    sent = notices(notify_ok)
    assert [s["TAG"] for s in sent] == ["unitalk:unitalk:credentials-invalid"] * 2
    assert "****bbbb" in sent[1]["MESSAGE"]
    assert Notification.objects.filter(portal=portal).count() == 1


def test_a_problem_resolved_before_delivery_is_not_sent(portal, notify_ok):
    portal.installed_by_user_id = 1
    portal.save()
    raise_credentials(portal)
    alerts.notification_resolve(portal=portal, tag="unitalk:credentials-invalid")
    run(alerts.KIND_DELIVER)
    assert notices(notify_ok) == []


def test_delivery_retries_through_the_job_system_when_bitrix24_is_down(portal, rsps):
    portal.installed_by_user_id = 1
    portal.save()
    rsps.post(REST + "im.notify.system.add", status=503, json={"error": "INTERNAL_SERVER_ERROR"})
    row = raise_credentials(portal)
    [job] = run(alerts.KIND_DELIVER)
    assert job.state == Job.State.RETRYING
    row.refresh_from_db()
    assert row.delivered_at is None


def test_critical_problem_is_emailed_to_stakeholders_once(portal, stakeholders, notify_ok):
    raise_credentials(portal)
    raise_credentials(portal)
    run(alerts.KIND_EMAIL)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["boss@example.com", "ops@example.com"]
    assert "Unitalk refused the API key" in mail.outbox[0].subject
    assert Notification.objects.get(portal=portal).emailed_at is not None


def test_a_warning_is_not_emailed(portal, stakeholders):
    alerts.notification_raise(
        portal=portal, kind="unitalk.unmapped_lines", message="103", severity="warning"
    )
    assert not Job.objects.filter(kind=alerts.KIND_EMAIL).exists()


def test_email_is_written_in_the_portals_language(portal, stakeholders):
    portal.lang = "uk"
    portal.save()
    raise_credentials(portal)
    run(alerts.KIND_EMAIL)
    assert "Unitalk відхилив API-ключ" in mail.outbox[0].subject


def test_a_dead_job_becomes_a_problem_for_the_admins_and_an_email(portal, stakeholders):
    # given
    item = open_item(portal)
    test_work_outcome["next"] = PermanentError("crm: ACCESS_DENIED")
    # when: a retry of the item's job dies again
    jobs.job_retry_now(job=item.job)
    jobs.job_execute(job_id=item.job_id)
    # then
    row = Notification.objects.get(portal=portal, tag=alerts.DEAD_JOBS_TAG)
    assert "ACCESS_DENIED" in row.message
    run(alerts.KIND_EMAIL)
    assert len(mail.outbox) == 1


def test_daily_digest_is_queued_once_per_day_after_its_hour(portal, stakeholders, settings):
    settings.NOTIFY_DIGEST_HOUR_UTC = 6
    early = datetime(2026, 5, 4, 5, 0, tzinfo=UTC)
    later = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
    assert delivery.digests_enqueue(now=early) == 0
    delivery.digests_enqueue(now=later)
    delivery.digests_enqueue(now=later.replace(hour=9))
    assert Job.objects.filter(kind=alerts.KIND_DIGEST).count() == 1


#: After the digest hour: the digest tests must not depend on when they run.
AFTER_DIGEST_HOUR = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)


def test_digest_summarises_lists_and_problems(portal, stakeholders):
    open_item(portal)
    raise_credentials(portal)
    assert delivery.digests_enqueue(now=AFTER_DIGEST_HOUR) == 1
    run(alerts.KIND_DIGEST)
    body = mail.outbox[-1].body
    assert "Calls not saved in the CRM: 1 new, 1 open" in body
    assert "Unitalk refused the API key" in body


def test_no_digest_when_the_portal_turned_it_off(portal, stakeholders):
    PortalOptions.objects.filter(pk=stakeholders.pk).update(daily_digest=False)
    assert delivery.digests_enqueue(now=AFTER_DIGEST_HOUR) == 0


def test_the_dead_jobs_problem_closes_when_the_retry_succeeds(portal):
    item = open_item(portal)
    test_work_outcome["next"] = PermanentError("crm: ACCESS_DENIED")
    jobs.job_retry_now(job=item.job)
    jobs.job_execute(job_id=item.job_id)
    assert Notification.objects.filter(tag=alerts.DEAD_JOBS_TAG, resolved_at=None).exists()
    test_work_outcome["next"] = "ok"
    jobs.job_retry_now(job=Job.objects.get(pk=item.job_id))
    jobs.job_execute(job_id=item.job_id)
    assert not Notification.objects.filter(tag=alerts.DEAD_JOBS_TAG, resolved_at=None).exists()
