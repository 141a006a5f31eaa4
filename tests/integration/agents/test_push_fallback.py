"""Push to Unitalk (optional) and the fallback: a failed push pauses the agent for the dialer
at once, one notice each to the agent and their manager, and recovery clears both."""

from __future__ import annotations

import pytest

from integration import jobs
from integration.agents import fallback, poll, push, services
from integration.agents.models import AgentState, AgentSync, Reason, State, Toggle
from integration.models import Job, Notification
from tests.integration.agents.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    agents_portal,
    mapped,
    unitalk_status,
)
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    call_settings,
    connection,
    portal,
    run_jobs,
)

pytestmark = pytest.mark.django_db(transaction=True)


def agent(uid: int) -> AgentState:
    return AgentState.objects.select_related("portal").get(bitrix_user_id=uid)


def open_notices(uid: int) -> list[Notification]:
    return list(
        Notification.objects.filter(
            kind=fallback.KIND_SYNC_FAILED, context__agent=uid, resolved_at__isnull=True
        ).order_by("tag")
    )


@pytest.fixture
def pushing(mapped, agents_portal, unitalk_status):
    poll.agents_poll(portal=mapped)
    AgentSync.objects.filter(portal=mapped).update(
        push_enabled=True, push_capability=AgentSync.Capability.PRESENT
    )
    return mapped


def test_push_is_off_by_default(mapped, agents_portal, unitalk_status):
    poll.agents_poll(portal=mapped)
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.BREAK)
    run_jobs()
    assert unitalk_status.calls == 0
    assert not Job.objects.filter(kind=push.KIND_PUSH).exists()


def test_a_change_is_pushed_once_and_repeats_do_nothing(pushing, unitalk_status):
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.BREAK)
    run_jobs()
    assert unitalk_status.statuses["101"] == "PAUSE"
    calls = unitalk_status.calls
    push.push_enqueue(agent=agent(5))  # nothing new to say
    run_jobs()
    assert unitalk_status.calls == calls


def test_last_writer_wins_when_an_old_job_runs_late(pushing, unitalk_status):
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.BREAK)
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.AVAILABLE)
    run_jobs()
    assert unitalk_status.statuses["101"] == "ONLINE"  # both jobs sent the newest value


def test_push_failure_pauses_notifies_agent_and_manager_once_and_recovery_clears_both(
    pushing, unitalk_status, agents_portal
):
    unitalk_status.fault = "5xx"
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.BREAK)
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.AVAILABLE)
    for _ in range(3):
        run_jobs(rounds=3)
    a5 = agent(5)
    assert (a5.state, a5.reason) == (State.PAUSED, Reason.SYNC_FAILED)
    assert not services.agent_can_take_dialer_call(agent=a5)
    rows = open_notices(5)
    assert [(r.tag, r.user_id) for r in rows] == [
        ("unitalk-status:5", 5),
        ("unitalk-status:5:manager", 20),  # head of department 1 (department.get UF_HEAD)
    ]
    assert {n["TAG"]: n["USER_ID"] for n in agents_portal.notices.values()} == {
        "unitalk:unitalk-status:5": 5,
        "unitalk:unitalk-status:5:manager": 20,
    }
    assert len(agents_portal.notices_sent) == 2  # retries added no notice

    unitalk_status.fault = ""
    run_jobs()
    a5 = agent(5)
    assert a5.state == State.AVAILABLE
    assert not a5.push_failed
    assert services.agent_can_take_dialer_call(agent=a5)
    assert open_notices(5) == []
    # Both Bitrix24 notices were replaced (same TAG) by the "works again" notice.
    assert len(agents_portal.notices) == 2
    assert all(
        n["MESSAGE"].startswith("Unitalk status sync works again")
        for n in agents_portal.notices.values()
    )


def test_without_a_department_head_the_problem_recipients_are_told(
    pushing, unitalk_status, agents_portal
):
    AgentState.objects.filter(bitrix_user_id=5).update(manager_user_id=None)
    unitalk_status.fault = "error"
    services.agent_toggle_set(agent=agent(5), toggle=Toggle.BREAK)
    run_jobs(rounds=2)
    manager_row = next(r for r in open_notices(5) if r.tag.endswith(":manager"))
    assert manager_row.audience == Notification.Audience.ADMINS
    assert agents_portal.notices["unitalk:unitalk-status:5:manager"]["USER_ID"] == 1  # installer


def test_capability_absent_while_asked_pauses_and_switching_off_clears(
    mapped, agents_portal, unitalk_status
):
    poll.agents_poll(portal=mapped)
    unitalk_status.present = False
    sync = services.agent_sync_get(portal=mapped)
    sync.push_enabled = True
    sync.save()
    push.push_settings_changed(portal=mapped, sync=sync)
    run_jobs()
    assert AgentSync.objects.get().push_capability == AgentSync.Capability.ABSENT
    assert (agent(5).state, agent(5).reason) == (State.PAUSED, Reason.SYNC_FAILED)
    assert len(open_notices(5)) == 2
    sync.push_enabled = False
    sync.save()
    push.push_settings_changed(portal=mapped, sync=sync)
    run_jobs()
    assert agent(5).state == State.AVAILABLE
    assert open_notices(5) == []


def test_a_probe_fault_retries_instead_of_deciding(mapped, agents_portal, unitalk_status):
    poll.agents_poll(portal=mapped)
    unitalk_status.fault = "5xx"
    job = jobs.job_enqueue(kind=push.KIND_PROBE, key="probe-1", portal=mapped)
    jobs.job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.RETRYING
    assert AgentSync.objects.get().push_capability == AgentSync.Capability.UNKNOWN


def test_predicate_needs_a_first_reading_and_sees_a_fresh_call(mapped, agents_portal):
    from tests.integration.calls.fixtures import make_call

    services.agents_roster_sync(portal=mapped)
    assert not services.agent_can_take_dialer_call(agent=agent(5))  # never read yet
    poll.agents_poll(portal=mapped)
    assert services.agent_can_take_dialer_call(agent=agent(5))
    make_call(mapped, line="101", ended=False)  # its webhook not yet merged into the state
    assert not services.agent_can_take_dialer_call(agent=agent(5))


def test_reverse_direction_pauses_and_reopens_but_never_closes(mapped, agents_portal):
    from integration.agents import reverse

    poll.agents_poll(portal=mapped)
    reverse.agent_toggle(agent=agent(5), toggle=Toggle.BREAK)
    run_jobs()
    assert agents_portal.days[5] == "OPENED"  # off by default: time sheets untouched
    AgentSync.objects.update(reverse_enabled=True)
    reverse.agent_toggle(agent=agent(5), toggle=Toggle.AVAILABLE)
    reverse.agent_toggle(agent=agent(5), toggle=Toggle.BREAK)
    run_jobs()
    assert agents_portal.days[5] == "PAUSED"
    assert agent(5).timeman_status == "PAUSED"
    reverse.agent_toggle(agent=agent(5), toggle=Toggle.AVAILABLE)
    run_jobs()
    assert agents_portal.days[5] == "OPENED"
    assert agent(5).state == State.AVAILABLE
    reverse.agent_toggle(agent=agent(5), toggle=Toggle.OFFLINE)
    run_jobs()
    assert "timeman.close" not in agents_portal.requests
