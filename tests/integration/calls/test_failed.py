import pytest

from integration import jobs
from integration.calls import failed
from integration.calls.models import FailedCall
from integration.core.errors import PermanentError
from integration.models import Job
from tests.support.factories import PortalFactory

pytestmark = pytest.mark.django_db(transaction=True)

outcome: dict[str, Exception | None] = {"error": None}


@jobs.register("test.crm_update")
def _crm_update(job):
    if outcome["error"]:
        raise outcome["error"]


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(jobs, "_send", lambda pairs, countdown=0: None)
    outcome["error"] = None


@pytest.fixture
def portal():
    return PortalFactory(domain="a.bitrix24.ua")


def _dead_job():
    outcome["error"] = PermanentError("CRM refused the update")
    job = jobs.job_enqueue(kind="test.crm_update", key="crm-1")
    jobs.job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.DEAD
    return job


def test_opening_the_same_problem_twice_counts_an_occurrence(portal):
    first = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key="missed:380501112233",
        reason="missed",
        phone_number="380501112233",
    )
    second = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key="missed:380501112233",
        reason="missed again",
        phone_number="380501112233",
    )
    assert first.pk == second.pk
    assert second.occurrences == 2
    assert second.reason == "missed again"


def test_a_resolved_problem_that_happens_again_opens_a_new_item(portal):
    item = failed.failed_call_open(
        portal=portal, kind=FailedCall.Kind.MISSED, dedupe_key="missed:1", reason="missed"
    )
    assert failed.failed_call_resolve(item=item, resolution="called back", user_id=5)
    again = failed.failed_call_open(
        portal=portal, kind=FailedCall.Kind.MISSED, dedupe_key="missed:1", reason="missed"
    )
    assert again.pk != item.pk


def test_retrying_an_item_reruns_its_job_and_success_resolves_it(portal):
    job = _dead_job()
    item = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.CRM_SYNC_FAILED,
        dedupe_key=f"job:{job.pk}",
        reason=job.last_error,
        job=job,
    )
    outcome["error"] = None

    item = failed.failed_call_retry(item=item)
    assert item.state == FailedCall.State.RETRYING
    jobs.job_execute(job_id=job.pk)

    item.refresh_from_db()
    assert item.state == FailedCall.State.RESOLVED
    assert item.resolution == "retried successfully"


def test_a_retry_that_dies_again_reopens_the_item_with_the_new_reason(portal):
    job = _dead_job()
    item = failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.CRM_SYNC_FAILED,
        dedupe_key=f"job:{job.pk}",
        reason="old",
        job=job,
    )
    outcome["error"] = PermanentError("still refused")
    failed.failed_call_retry(item=item)
    jobs.job_execute(job_id=job.pk)
    item.refresh_from_db()
    assert item.state == FailedCall.State.OPEN
    assert "still refused" in item.reason


def test_items_without_a_job_cannot_be_retried(portal):
    item = failed.failed_call_open(
        portal=portal, kind=FailedCall.Kind.MISSED, dedupe_key="missed:2", reason="missed"
    )
    with pytest.raises(ValueError, match="call the number back"):
        failed.failed_call_retry(item=item)


def test_an_answered_outgoing_call_resolves_missed_items_for_that_number(portal):
    failed.failed_call_open(
        portal=portal,
        kind=FailedCall.Kind.MISSED,
        dedupe_key="missed:380",
        reason="missed",
        phone_number="380",
    )
    assert (
        failed.missed_calls_resolve_for_number(
            portal=portal, phone_number="380", resolution="called back"
        )
        == 1
    )
    assert failed.failed_call_counts(portal=portal)["missed"] == 0


def test_lists_and_counts_are_scoped_to_one_portal(portal):
    other = PortalFactory(domain="b.bitrix24.ua")
    failed.failed_call_open(
        portal=portal, kind=FailedCall.Kind.MISSED, dedupe_key="a", reason="r", owner_user_id=3
    )
    failed.failed_call_open(portal=other, kind=FailedCall.Kind.MISSED, dedupe_key="a", reason="r")
    assert failed.failed_call_list(portal=portal).count() == 1
    assert failed.failed_call_list(portal=portal, user_id=4).count() == 0
    assert failed.failed_call_counts(portal=portal) == {
        "dial_failed": 0,
        "missed": 1,
        "crm_sync_failed": 0,
    }
