"""The poll job: work days, presence and settings from Bitrix24 into AgentState, bad answers
into defined states, failed polls into stale agents, and the free searchCrmEntities reading."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integration import jobs
from integration.agents import poll, services
from integration.agents.models import AgentState, AgentSync, AgentTransition, Reason, State
from integration.bitrix import telephony
from integration.core.errors import RateLimitedError
from integration.models import Job, Notification
from integration.unitalk.models import OperatorMapping
from tests.integration.agents.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    agents_portal,
    mapped,
    unitalk_status,
)
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    REST,
    call_settings,
    connection,
    make_call,
    portal,
)

pytestmark = pytest.mark.django_db


def agent(uid: int) -> AgentState:
    return AgentState.objects.select_related("portal").get(bitrix_user_id=uid)


def test_first_poll_creates_agents_and_reads_day_presence_settings_and_manager(
    mapped, agents_portal
):
    agents_portal.days[6] = "CLOSED"
    result = poll.agents_poll(portal=mapped)
    assert result["read"] == {"settings": 2, "departments": 1, "users": 2, "status": 2}
    assert result["requests"] == 4
    a5, a6 = agent(5), agent(6)
    assert (a5.state, a5.line, a5.name, a5.manager_user_id) == (
        State.AVAILABLE,
        "101",
        "Agent5 Test",
        20,
    )
    assert (a6.state, a6.reason) == (State.PAUSED, Reason.DAY_CLOSED)
    # one batch each for settings, users, departments, status: 4 request slots for 2 agents
    assert agents_portal.polls() == 4


def test_later_polls_read_only_the_work_day(mapped, agents_portal):
    poll.agents_poll(portal=mapped)
    before = agents_portal.polls()
    poll.agents_poll(portal=mapped, now=timezone.now() + timedelta(seconds=60))
    assert agents_portal.polls() - before == 1  # timeman.status only; user.get every 5 min


def test_clocking_out_pauses_with_the_reason_and_a_transition_row(mapped, agents_portal):
    poll.agents_poll(portal=mapped)
    agents_portal.days[5] = "CLOSED"
    poll.agents_poll(portal=mapped)
    a5 = agent(5)
    assert (a5.state, a5.reason) == (State.PAUSED, Reason.DAY_CLOSED)
    row = AgentTransition.objects.filter(agent=a5).first()
    assert (row.from_state, row.to_state, row.to_reason, row.source) == (
        State.AVAILABLE,
        State.PAUSED,
        Reason.DAY_CLOSED,
        "poll",
    )


def test_a_transition_is_dated_when_the_reading_came_in_not_when_the_poll_began(
    mapped, agents_portal, monkeypatch
):
    # The status read takes 5 s (faults, a budget wait): until its answer is stored the dialer
    # still sees the agent available, so the pause must not be dated before it (docs/agents.md
    # §5.1, item 5; tests/e2e/test_campaign_chaos.py counted such dials as dials to the paused).
    from integration.bitrix import timeman

    poll.agents_poll(portal=mapped)
    agents_portal.days[5] = "CLOSED"
    began = timezone.now()
    clock = {"now": began}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    real = timeman.status_many

    def slow_answer(portal, user_ids):
        answer = real(portal, user_ids)
        clock["now"] = began + timedelta(seconds=5)
        return answer

    monkeypatch.setattr(timeman, "status_many", slow_answer)
    poll.agents_poll(portal=mapped)
    a5 = agent(5)
    assert (a5.state, a5.reason) == (State.PAUSED, Reason.DAY_CLOSED)
    row = AgentTransition.objects.get(agent=a5, to_state=State.PAUSED)
    assert row.at == a5.since == began + timedelta(seconds=5)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("PAUSED", Reason.DAY_PAUSED),
        ("EXPIRED", Reason.DAY_EXPIRED),
        ("WHATEVER", Reason.DAY_CLOSED),
    ],
)
def test_each_work_day_answer_has_a_defined_state(mapped, agents_portal, status, reason):
    agents_portal.days[5] = status
    poll.agents_poll(portal=mapped)
    assert (agent(5).state, agent(5).reason) == (State.PAUSED, reason)


def test_user_without_time_tracking_follows_online_state(mapped, agents_portal):
    agents_portal.tracking[5] = False
    agents_portal.days[5] = "CLOSED"
    agents_portal.user(5, online=False)
    agents_portal.days[5] = "CLOSED"
    poll.agents_poll(portal=mapped)
    assert (agent(5).state, agent(5).reason) == (State.PAUSED, Reason.OFFLINE)
    agents_portal.user(5, online=True)
    AgentSync.objects.update(users_polled_at=None)
    poll.agents_poll(portal=mapped)
    assert agent(5).state == State.AVAILABLE


def test_module_missing_means_tracking_off_for_everybody(mapped, agents_portal):
    agents_portal.module_missing = True
    poll.agents_poll(portal=mapped)
    assert AgentSync.objects.get().timeman_missing is True
    assert agent(5).state == State.AVAILABLE  # online, no time tracking to honour


def test_deactivated_and_deleted_users_are_inactive_never_an_error(mapped, agents_portal):
    agents_portal.user(5, active=False)
    del agents_portal.users[6]  # left the company: user.get [] and timeman "User not found"
    result = poll.agents_poll(portal=mapped)
    assert "failed" not in result
    assert agent(5).state == State.INACTIVE
    assert agent(6).state == State.INACTIVE
    assert agent(6).user_missing


def test_a_mapping_removed_leaves_the_agent_without_a_line(mapped, agents_portal):
    poll.agents_poll(portal=mapped)
    OperatorMapping.objects.filter(bitrix_user_id=6).delete()
    poll.agents_poll(portal=mapped)
    assert agent(6).state == State.NO_LINE


def test_three_failed_polls_make_agents_stale_and_tell_the_admins_then_recover(
    mapped, agents_portal
):
    poll.agents_poll(portal=mapped)
    # (not 503 QUERY_LIMIT_EXCEEDED: after one, our budget holds the next request back until the
    # portal's bucket drained, and these polls come back to back)
    agents_portal.down = (500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Down"})
    for n in range(3):
        result = poll.agents_poll(portal=mapped)
        assert result["failures"] == n + 1
        assert (agent(5).state == State.PAUSED) == (n == 2)
    assert agent(5).reason == Reason.SYNC_FAILED
    assert (
        Notification.objects.filter(kind="agents.poll_failed", resolved_at__isnull=True).count()
        == 1
    )
    agents_portal.down = None
    poll.agents_poll(portal=mapped)
    assert agent(5).state == State.AVAILABLE
    assert not Notification.objects.filter(
        kind="agents.poll_failed", resolved_at__isnull=True
    ).exists()


def test_a_live_call_makes_busy_then_wrap_up_then_available(mapped, agents_portal, settings):
    settings.AGENT_WRAP_UP_S = 30
    poll.agents_poll(portal=mapped)
    call = make_call(mapped, line="101", ended=False)
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert agent(5).state == State.BUSY
    call.ended, call.talk_seconds, call.ended_at = True, 40, timezone.now()
    call.save()
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert agent(5).state == State.WRAP_UP
    services.agent_refresh(
        agent=agent(5), source="poll", now=timezone.now() + timedelta(seconds=31)
    )
    assert agent(5).state == State.AVAILABLE


def test_a_reconciliation_that_ends_the_busy_call_frees_its_agent_at_once(mapped, agents_portal):
    # CALL_END never came; history/get finished the call: the panel must not wait for a poll
    from integration.agents import flow
    from integration.calls import reconcile

    poll.agents_poll(portal=mapped)
    call = make_call(mapped, line="101", ended=False)
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert agent(5).state == State.BUSY
    call.ended, call.state, call.ended_at = True, "ANSWER", timezone.now()
    call.save()
    job = Job.objects.create(
        kind=reconcile.KIND_RECONCILE, portal=mapped, result={"recovered": 1}, payload={}
    )
    flow._call_event_settled(job, Job.State.SUCCEEDED)
    assert agent(5).state != State.BUSY
    row = AgentTransition.objects.filter(agent=agent(5)).order_by("-pk").first()
    assert (row.from_state, row.source) == (State.BUSY, "reconcile")


def test_a_merged_webhook_refreshes_its_lines_agent_from_the_jobs_result_alone(
    mapped, agents_portal, django_assert_max_num_queries
):
    # the webhook job's result names the call's line: no event or call is read back for it
    from integration.agents import flow
    from integration.unitalk import intake

    poll.agents_poll(portal=mapped)
    call = make_call(mapped, line="101", ended=False)
    result = {"call": call.pk, "changed": True, "line": "101", "ended": False}
    job = Job.objects.create(
        kind=intake.KIND, portal=mapped, payload={"event_id": 10**9}, result=result
    )
    flow._call_event_settled(job, Job.State.SUCCEEDED)
    assert agent(5).state == State.BUSY
    # a webhook that changed nothing (a duplicate) changes no agent and costs no query
    job.result = {**result, "changed": False}
    with django_assert_max_num_queries(0):
        flow._call_event_settled(job, Job.State.SUCCEEDED)


def test_a_busy_call_without_call_end_stops_holding_the_agent(mapped, agents_portal, settings):
    settings.AGENT_BUSY_MAX_S = 60
    poll.agents_poll(portal=mapped)
    call = make_call(mapped, line="101", ended=False)
    from integration.calls.models import Call

    Call.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert agent(5).state == State.AVAILABLE


def test_three_failed_operator_legs_mark_the_line_failing(mapped, agents_portal):
    from integration.calls.models import Call

    poll.agents_poll(portal=mapped)
    for _ in range(3):
        c = make_call(mapped, line="101", direction=Call.Direction.OUT, state="CHANUNAVAIL", talk=0)
        Call.objects.filter(pk=c.pk).update(full_seconds=0, ended_at=timezone.now())
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert (agent(5).state, agent(5).reason) == (State.PAUSED, Reason.LINE_FAILING)


def test_a_line_failing_pause_lapses_after_its_window(mapped, agents_portal, settings):
    # given three failed operator legs, the last one longer ago than the window
    from integration.calls.models import Call

    settings.AGENT_LINE_FAIL_WINDOW_S = 600
    poll.agents_poll(portal=mapped)
    long_ago = timezone.now() - timedelta(seconds=601)
    for _ in range(3):
        c = make_call(mapped, line="101", direction=Call.Direction.OUT, state="CHANUNAVAIL", talk=0)
        Call.objects.filter(pk=c.pk).update(full_seconds=0, ended_at=long_ago)

    # when presence is computed, then the line is tried again: a paused agent gets no dialer
    # call, so nothing else would ever clear it
    services.agents_refresh_line(portal_id=mapped.pk, line="101")
    assert agent(5).state == State.AVAILABLE


def test_search_crm_entities_refreshes_the_responsible_for_free(mapped, agents_portal, rsps):
    poll.agents_poll(portal=mapped)
    rsps.add(
        "POST",
        f"{REST}telephony.externalCall.searchCrmEntities",
        json={
            "result": [
                {
                    "CRM_ENTITY_TYPE": "CONTACT",
                    "CRM_ENTITY_ID": 3,
                    "ASSIGNED_BY_ID": 5,
                    "ASSIGNED_BY": {"ID": "5", "TIMEMAN_STATUS": "PAUSED"},
                }
            ]
        },
    )
    telephony.search_crm_entities(mapped, phone_number="380501112233")
    a5 = agent(5)
    assert (a5.state, a5.reason) == (State.PAUSED, Reason.DAY_PAUSED)
    assert a5.transitions.first().source == "search"


def test_beat_enqueues_one_poll_per_due_portal_per_period(mapped, agents_portal, settings):
    now = timezone.now()
    assert poll.agents_poll_enqueue_all(now=now) == 1
    assert poll.agents_poll_enqueue_all(now=now) == 1  # same key: still one job
    assert Job.objects.filter(kind=poll.KIND_POLL).count() == 1
    poll.agents_poll(portal=mapped, now=now)
    assert poll.agents_poll_enqueue_all(now=now + timedelta(seconds=10)) == 0


def test_outside_working_hours_the_period_is_longer(mapped, settings):
    settings.AGENT_WORK_START_HOUR, settings.AGENT_WORK_END_HOUR = 0, 0
    assert poll.poll_period(portal=mapped, now=timezone.now()) == settings.AGENT_POLL_OFF_S
    settings.AGENT_WORK_START_HOUR, settings.AGENT_WORK_END_HOUR = 0, 24
    assert poll.poll_period(portal=mapped, now=timezone.now()) == settings.AGENT_POLL_WORK_S


def test_unknown_per_user_errors_give_defined_states(mapped, agents_portal):
    poll.agents_poll(portal=mapped)
    AgentSync.objects.update(users_polled_at=None)
    agents_portal.odd_errors = {"user.get": {5}, "timeman.status": {6}}
    result = poll.agents_poll(portal=mapped)
    assert "failed" not in result
    a5, a6 = agent(5), agent(6)
    assert a5.state == State.AVAILABLE  # user.get said nothing new: what we knew stays
    assert not a5.user_missing
    assert (a6.state, a6.reason) == (State.PAUSED, Reason.DAY_CLOSED)  # day unknown: not open
    assert "UNKNOWN" in a6.transitions.first().detail


def test_a_poll_does_not_undo_a_switch_set_while_it_ran(mapped, agents_portal, monkeypatch):
    from integration.bitrix import timeman

    real = timeman.status_many

    def admin_switches_push_on_meanwhile(portal, user_ids):
        AgentSync.objects.filter(portal=portal).update(push_enabled=True)
        return real(portal, user_ids)

    monkeypatch.setattr(timeman, "status_many", admin_switches_push_on_meanwhile)
    poll.agents_poll(portal=mapped)
    assert AgentSync.objects.get(portal=mapped).push_enabled is True


def test_polls_and_probes_run_in_the_background_lane_even_when_asked_from_interactive_work(
    mapped,
):
    # docs/agents.md §5.1: polling must never starve call logging (issue 13, issue 17's lanes).
    from integration.agents import push
    from integration.core import lanes

    with lanes.lane_scope(lanes.INTERACTIVE):
        polled = poll.poll_now_enqueue(portal=mapped)
        probe = jobs.job_enqueue(kind=push.KIND_PROBE, key="probe-lane", portal=mapped)
    assert polled.payload["lane"] == lanes.BACKGROUND
    assert probe.payload["lane"] == lanes.BACKGROUND


def test_a_budget_wait_mid_poll_keeps_what_was_read_and_the_job_goes_on_from_there(
    mapped, agents_portal, monkeypatch
):
    # given a first poll done, then agent 5 clocks out; one agent per request, and the
    # portal's budget says "later" after the first work-day request (a drain holds the bucket)
    started = timezone.now()
    poll.agents_poll(portal=mapped)
    agents_portal.days[5] = agents_portal.days[6] = "CLOSED"
    monkeypatch.setattr(poll.timeman, "MAX_COMMANDS", 1)
    real, asked = poll.timeman.status_many, []

    def status_many(portal, user_ids):
        asked.append(list(user_ids))
        if len(asked) == 2:
            raise RateLimitedError("slot at +2s", retry_after=2, service="ratelimit")
        return real(portal, user_ids)

    monkeypatch.setattr(poll.timeman, "status_many", status_many)

    # when the poll job runs into the wait
    since = timezone.now()
    with pytest.raises(RateLimitedError):
        poll.agents_poll(portal=mapped, since=since)

    # then the agent read first already shows it, and the wait counts as no failure
    first = asked[0][0]
    assert (agent(first).state, agent(first).reason) == (State.PAUSED, Reason.DAY_CLOSED)
    assert AgentSync.objects.get(portal=mapped).poll_failures == 0
    assert not Notification.objects.filter(kind="agents.poll_failed").exists()

    # when the job comes back at its turn, it reads only the agent it had not read
    result = poll.agents_poll(portal=mapped, since=since)
    assert asked[2:] == [[uid] for uid in (5, 6) if uid != first]
    assert result["read"] == {"status": 1}
    assert result["requests"] == 1
    assert {agent(5).state, agent(6).state} == {State.PAUSED}
    assert started <= AgentSync.objects.get(portal=mapped).last_poll_ok_at
