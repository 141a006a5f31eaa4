"""Key rotation end to end: refused key → work paused, admin told → new key → work completes."""

from __future__ import annotations

import json

import pytest
import responses

from integration import jobs
from integration.calls import reconcile
from integration.calls.models import Call
from integration.core.errors import AuthExpiredError
from integration.models import Job, Notification
from integration.unitalk import services
from integration.unitalk.models import OperatorMapping, UnitalkConnection

from .conftest import API, payload, run_jobs

pytestmark = pytest.mark.django_db

NEW_KEY = "NEWkey5678ab"
REFUSED = {"status": "Error", "message": "Authorization invalid"}


@pytest.fixture
def unitalk(rsps):
    """A Unitalk that only accepts NEW_KEY; counts requests per method."""

    def answer_with(body):
        def answer(request):
            if request.headers.get("Authorization") != NEW_KEY:
                return 200, {}, json.dumps(REFUSED)
            return 200, {}, json.dumps(body)

        return answer

    rsps.add_callback(
        responses.POST, f"{API}/history/get", callback=answer_with(payload("history_get"))
    )
    rsps.add_callback(
        responses.POST, f"{API}/users/list", callback=answer_with(payload("users_list"))
    )
    return rsps


@pytest.fixture
def bitrix_users(monkeypatch):
    users = [{"ID": "7", "UF_PHONE_INNER": "2000"}, {"ID": "8", "UF_PHONE_INNER": "2001"}]
    monkeypatch.setattr(services, "_bitrix_users", lambda portal: users)
    return users


def test_refused_key_pauses_work_notifies_and_a_new_key_completes_it(
    portal, connection, unitalk, bitrix_users
):
    # given: reconciliation due; Unitalk refuses the stored key
    reconcile_job = jobs.job_enqueue(kind=reconcile.KIND_RECONCILE, key="r1", portal=portal)

    # when: it runs
    run_jobs()

    # then: paused (not failed), connection marked, admins told once
    reconcile_job.refresh_from_db()
    assert (reconcile_job.state, reconcile_job.pause_key) == (Job.State.PAUSED, "unitalk")
    connection.refresh_from_db()
    assert connection.status == UnitalkConnection.Status.CREDENTIALS_INVALID
    notice = Notification.objects.get(portal=portal, resolved_at__isnull=True)
    assert notice.tag == services.TAG_CREDENTIALS
    assert connection.api_key[-4:] in notice.message
    assert connection.api_key not in notice.message
    requests_so_far = len(unitalk.calls)
    assert requests_so_far == 2  # the request and its one retry with the re-read key

    # when: more Unitalk work comes while the key is refused
    sync = jobs.job_enqueue(kind=services.KIND_OPERATORS_SYNC, key="s1", portal=portal)
    run_jobs()

    # then: it pauses up front, without a request
    sync.refresh_from_db()
    assert sync.state == Job.State.PAUSED
    assert len(unitalk.calls) == requests_so_far

    # when: the admin saves a new key
    services.connection_save_key(portal=portal, api_key=NEW_KEY)

    # then: the notification is resolved and the paused work runs to completion
    assert not Notification.objects.filter(portal=portal, resolved_at__isnull=True).exists()
    unitalk_jobs = Job.objects.filter(kind__startswith="unitalk.")
    assert set(unitalk_jobs.values_list("state", flat=True)) == {Job.State.PENDING}
    run_jobs()
    assert set(unitalk_jobs.values_list("state", flat=True)) == {Job.State.SUCCEEDED}
    assert Call.objects.filter(portal=portal, ended=True).count() == 2
    assert OperatorMapping.objects.filter(portal=portal).count() == 2
    connection.refresh_from_db()
    assert connection.status == UnitalkConnection.Status.OK


def test_repeated_refusals_share_one_notification(portal, connection, unitalk):
    for key in ("a", "b"):
        jobs.job_enqueue(kind=reconcile.KIND_RECONCILE, key=key, portal=portal)
        UnitalkConnection.objects.filter(pk=connection.pk).update(status="ok")
        run_jobs()

    notice = Notification.objects.get(portal=portal)
    assert notice.count == 2


def test_refusal_of_a_key_replaced_meanwhile_does_not_pause(portal, connection):
    old_key = connection.api_key
    services.connection_save_key(portal=portal, api_key=NEW_KEY)

    with pytest.raises(AuthExpiredError):
        services.connection_mark_invalid(
            connection_id=connection.pk, api_key=old_key, reason="Authorization invalid"
        )

    connection.refresh_from_db()
    # the new key waits for its own check; the old key's refusal does not touch it
    assert connection.status == UnitalkConnection.Status.UNCHECKED
    assert not Notification.objects.exists()


def test_api_key_is_encrypted_at_rest_and_shown_masked(connection):
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            "SELECT api_key FROM unitalk_unitalkconnection WHERE id = %s", [connection.pk]
        )
        stored = cursor.fetchone()[0]

    assert connection.api_key not in stored
    assert connection.api_key_masked == "****" + connection.api_key[-4:]


def test_connection_test_reports_ok_and_counts_operators(connection, rsps):
    rsps.post(f"{API}/users/list", json=payload("users_list"))

    result = services.connection_test(connection=connection)

    assert result == {"ok": True, "status": "ok", "error": "", "operators": 3}


def test_connection_test_marks_unreachable_on_transient_failure(connection, rsps):
    rsps.post(f"{API}/users/list", status=503)

    result = services.connection_test(connection=connection)

    assert (result["ok"], result["status"]) == (False, "unreachable")
    connection.refresh_from_db()
    assert connection.status == "unreachable"


def test_webhooks_are_still_taken_in_while_the_key_is_refused(client, connection):
    UnitalkConnection.objects.filter(pk=connection.pk).update(status="credentials_invalid")

    response = client.post(
        f"/unitalk/webhook/{connection.webhook_secret}/",
        data=json.dumps(payload("call_end_in")),
        content_type="application/json",
    )
    run_jobs()

    assert response.status_code == 200
    assert Call.objects.get().ended  # merging needs no Unitalk request
