"""The tick's rules (docs/agents.md §5.2): who gets a number, which number, and when not."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from integration.agents import services as agent_services
from integration.agents.models import AgentState, AgentSync, Toggle
from integration.calls.models import Call, CallSync
from integration.campaigns import outcomes, services, sweep, tick
from integration.campaigns.models import Attempt, Campaign, CampaignAgent, CampaignItem
from integration.campaigns.services import Entry
from integration.models import Notification
from integration.unitalk.models import OperatorMapping
from tests.integration.calls.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    call_settings,
    connection,
    make_call,
    portal,
    run_jobs,
)
from tests.integration.campaigns.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    campaign,
    crm,
    dials,
)

pytestmark = pytest.mark.django_db


def _enrol(campaign, crm, *phones: str) -> list[CampaignItem]:
    entries = []
    for n, phone in enumerate(phones, start=1):
        crm.add(1, n, phone)
        entries.append(Entry(raw_phone=phone, entity_type="LEAD", entity_type_id=1, entity_id=n))
    services.items_add(campaign=campaign, entries=entries)
    return list(CampaignItem.objects.filter(campaign=campaign).order_by("pk"))


def _running(campaign) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(state=Campaign.State.RUNNING)
    campaign.refresh_from_db()
    return campaign


def _end(attempt: Attempt, state: str, *, full: int = 30) -> None:
    """Unitalk reports the end of the attempt's call (the webhook merged into a Call row)."""
    call = make_call(
        attempt.item.campaign.portal,
        direction=Call.Direction.OUT,
        state=state,
        number=attempt.item.phone,
        meta=attempt.call_sync.dial_meta,
    )
    Call.objects.filter(pk=call.pk).update(full_seconds=full)
    CallSync.objects.filter(pk=attempt.call_sync_id).update(call=call)
    call.refresh_from_db()
    assert outcomes.call_ended(call=call)


def test_each_free_agent_gets_one_number_from_their_own_line_with_campaign_meta(
    campaign, crm, dials
):
    items = _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003")
    _running(campaign)

    result = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert result["dialled"] == 2
    assert sorted(d["sip"] for d in dials) == ["101", "102"]
    attempts = list(Attempt.objects.order_by("pk"))
    assert {d["meta"] for d in dials} == {f"cmp:{campaign.pk}:{a.item_id}:{a.pk}" for a in attempts}
    states = [i.state for i in CampaignItem.objects.order_by("pk")]
    assert states == ["calling", "calling", "pending"]
    assert CallSync.objects.filter(origin=CallSync.Origin.CAMPAIGN).count() == 2
    # the re-check in Bitrix24 went in one batch for both numbers
    assert crm.count("batch") == 1
    assert crm.count("crm.item.get") == 0
    assert items[0].phone == "380501110001"


def test_an_agent_on_a_call_gets_no_second_number_and_a_second_tick_dials_nobody_twice(
    campaign, crm, dials
):
    _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003", "+380501110004")
    _running(campaign)

    tick.campaign_tick(campaign_id=campaign.pk)
    second = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert second["dialled"] == 0
    assert len(dials) == 2
    assert len({d["number"] for d in dials}) == 2


def test_paused_agent_is_skipped_and_auto_pause_needs_no_agent_for_n_minutes(
    campaign, crm, dials, django_capture_on_commit_callbacks
):
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    for agent in CampaignAgent.objects.filter(campaign=campaign):
        services.campaign_agent_pause(agent=agent, paused=True)
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        first = tick.campaign_tick(campaign_id=campaign.pk, now=now)
        early = tick.campaign_tick(campaign_id=campaign.pk, now=now + timedelta(minutes=9))
        late = tick.campaign_tick(campaign_id=campaign.pk, now=now + timedelta(minutes=10))
    run_jobs()

    assert first["dialled"] == early["dialled"] == 0
    assert late["waiting"] == "no agent available for 10 min"
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.PAUSED
    assert campaign.state_reason == "no agent available for 10 min"
    # the manager is told once, in the portal's language, under the campaign's TAG
    [notice] = crm.notices
    assert (notice["USER_ID"], notice["TAG"]) == (1, f"unitalk:campaign.autopause.{campaign.pk}")
    assert "No agent was available for 10 minutes" in notice["MESSAGE"]
    assert dials == []
    # started again, the problem closes (its banner goes)
    services.campaign_start(campaign=campaign)
    assert not Notification.objects.filter(
        kind=services.KIND_AUTO_PAUSED, resolved_at__isnull=True
    ).exists()


def test_a_campaign_whose_agents_all_lose_their_lines_pauses_itself_and_tells_the_manager(
    campaign, crm, dials, django_capture_on_commit_callbacks
):
    # Given a running campaign whose two agents each made a call
    _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003")
    _running(campaign)
    assert tick.campaign_tick(campaign_id=campaign.pk)["dialled"] == 2
    run_jobs()
    for attempt in Attempt.objects.select_related("item", "call_sync").filter(outcome=""):
        _end(attempt, "ANSWER")

    # When both lines' mappings are removed (the roster sync empties their lines)
    OperatorMapping.objects.filter(portal=campaign.portal).delete()
    agent_services.agents_roster_sync(portal=campaign.portal)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        first = tick.campaign_tick(campaign_id=campaign.pk, now=now)
        late = tick.campaign_tick(campaign_id=campaign.pk, now=now + timedelta(minutes=10))
    run_jobs()

    # Then nobody is dialled, the campaign pauses itself with the reason, the manager is told
    assert (first["dialled"], first["waiting"]) == (0, "no agent available")
    assert late["waiting"] == "no agent available for 10 min"
    assert set(AgentState.objects.values_list("line", flat=True)) == {""}
    campaign.refresh_from_db()
    assert (campaign.state, campaign.state_reason) == (
        Campaign.State.PAUSED,
        "no agent available for 10 min",
    )
    assert [n["USER_ID"] for n in crm.notices] == [1]
    assert f"unitalk:campaign.autopause.{campaign.pk}" == crm.notices[0]["TAG"]
    assert len(dials) == 2
    assert CampaignItem.objects.filter(state="pending").count() == 1


def test_agent_without_a_line_is_not_available(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    CampaignAgent.objects.filter(campaign=campaign, bitrix_user_id=6).update(bitrix_user_id=77)
    _running(campaign)

    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert [d["sip"] for d in dials] == ["101"]


@pytest.mark.parametrize(
    ("state", "delay"), [("NOANSWER", 1800), ("BUSY", 600), ("FAIL", 3600), ("CHANUNAVAIL", 3600)]
)
def test_retry_delay_follows_the_outcome(campaign, crm, dials, state, delay):
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    tick.campaign_tick(campaign_id=campaign.pk)
    attempt = Attempt.objects.select_related("item", "call_sync").get()

    before = timezone.now()
    _end(attempt, state)

    item = CampaignItem.objects.get()
    assert item.state == CampaignItem.State.PENDING
    assert item.attempts == 1
    assert item.last_outcome == state
    assert (
        before + timedelta(seconds=delay - 5)
        <= item.next_at
        <= timezone.now() + timedelta(seconds=delay)
    )
    # not due yet: the next tick leaves it alone
    assert tick.campaign_tick(campaign_id=campaign.pk)["dialled"] == 0


def test_answered_item_is_done_and_the_timeline_says_campaign_attempt_and_outcome(
    campaign, crm, dials
):
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    tick.campaign_tick(campaign_id=campaign.pk)
    attempt = Attempt.objects.select_related("item", "call_sync").get()

    _end(attempt, "BUSY")
    run_jobs()

    assert crm.comments[-1]["COMMENT"] == "Campaign Spring leads, attempt 1/3, BUSY"
    assert crm.comments[-1]["ENTITY_TYPE"] == "lead"


def test_no_number_is_dialled_past_max_attempts(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    # a loaded source (not numbers one by one): the campaign finishes when every number is final
    Campaign.objects.filter(pk=campaign.pk).update(source=Campaign.Source.CRM_FILTER)
    Campaign.objects.filter(pk=campaign.pk).update(max_attempts=2, retry_delays={"NOANSWER": 0})
    for _ in range(2):
        tick.campaign_tick(campaign_id=campaign.pk)
        _end(Attempt.objects.select_related("item", "call_sync").get(outcome=""), "NOANSWER")

    result = tick.campaign_tick(campaign_id=campaign.pk)

    item = CampaignItem.objects.get()
    assert item.state == CampaignItem.State.FAILED
    assert item.reason == "max attempts reached (2/2)"
    assert Attempt.objects.count() == 2
    assert result.get("finished") is True
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.FINISHED


def test_a_number_not_reached_becomes_a_todo_for_its_responsible_when_asked(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001")
    CampaignItem.objects.update(responsible_user_id=6)
    Campaign.objects.filter(pk=campaign.pk).update(max_attempts=1, todo_on_failure=True)
    _running(campaign)
    tick.campaign_tick(campaign_id=campaign.pk)

    _end(Attempt.objects.select_related("item", "call_sync").get(), "BUSY")
    run_jobs()

    [todo] = crm.todos
    assert (todo["ownerTypeId"], todo["ownerId"], todo["responsibleId"]) == (1, 1, 6)
    assert todo["title"] == "Campaign Spring leads: 380501110001 not reached"


def test_nothing_is_dialled_outside_the_window_in_the_clients_timezone(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001")
    Campaign.objects.filter(pk=campaign.pk).update(
        timezone="Europe/Kyiv", window_start=time(9, 0), window_end=time(20, 0)
    )
    _running(campaign)
    # 06:30 UTC is 08:30 in Kyiv in winter (UTC+2): before the window; 07:30 UTC is inside.
    early = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    inside = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)

    assert tick.campaign_tick(campaign_id=campaign.pk, now=early)["waiting"] == (
        "outside the calling window"
    )
    assert tick.campaign_tick(campaign_id=campaign.pk, now=inside)["dialled"] == 1


def test_window_may_span_midnight(campaign):
    campaign.window_start, campaign.window_end = time(22, 0), time(2, 0)
    assert tick.in_window(campaign=campaign, now=datetime(2026, 12, 1, 23, 0, tzinfo=UTC))
    assert tick.in_window(campaign=campaign, now=datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    assert not tick.in_window(campaign=campaign, now=datetime(2026, 12, 2, 3, 0, tzinfo=UTC))


def test_do_not_call_numbers_are_never_dialled(campaign, crm, dials):
    Campaign.objects.filter(pk=campaign.pk).update(do_not_call=["380501110001"])
    campaign.refresh_from_db()
    _enrol(campaign, crm, "+380 50 111 0001", "+380501110002")
    # added to the list after enrolment: the tick refuses it too
    Campaign.objects.filter(pk=campaign.pk).update(do_not_call=["380501110001", "380501110002"])
    _running(campaign)

    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert dials == []
    assert set(CampaignItem.objects.values_list("state", "reason")) == {
        ("skipped", "on the do-not-call list")
    }


def test_item_deleted_in_bitrix24_after_loading_is_skipped_with_the_reason(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    del crm.items[1][1]
    _running(campaign)

    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert [d["number"] for d in dials] == ["380501110002"]
    skipped = CampaignItem.objects.get(entity_id=1)
    assert (skipped.state, skipped.reason) == ("skipped", "deleted in Bitrix24")


def test_two_operator_legs_not_answered_in_a_row_pause_the_agent_without_charging_the_item(
    campaign, crm, dials
):
    _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003")
    CampaignAgent.objects.filter(campaign=campaign, bitrix_user_id=6).delete()
    _running(campaign)
    for _ in range(2):
        tick.campaign_tick(campaign_id=campaign.pk)
        _end(
            Attempt.objects.select_related("item", "call_sync").get(outcome=""), "NOANSWER", full=0
        )

    agent = CampaignAgent.objects.get(campaign=campaign)
    assert agent.paused is True
    assert agent.pause_reason == "did not pick up 2 calls in a row"
    assert list(CampaignItem.objects.values_list("attempts", flat=True)) == [0, 0, 0]
    assert tick.campaign_tick(campaign_id=campaign.pk)["dialled"] == 0


def _pause_by_two_legs(campaign, crm, django_capture_on_commit_callbacks) -> CampaignAgent:
    _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003")
    CampaignAgent.objects.filter(campaign=campaign, bitrix_user_id=6).delete()
    _running(campaign)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tick.campaign_tick(campaign_id=campaign.pk)
            _end(
                Attempt.objects.select_related("item", "call_sync").get(outcome=""),
                "NOANSWER",
                full=0,
            )
    run_jobs()
    return CampaignAgent.objects.get(campaign=campaign)


def test_an_agent_paused_for_legs_not_answered_and_the_manager_are_told_once_each(
    campaign, crm, dials, django_capture_on_commit_callbacks
):
    # Given a campaign of manager 1 whose agent 5 did not pick up two calls in a row
    AgentState.objects.filter(bitrix_user_id=5).update(name="Oleg Operator")
    agent = _pause_by_two_legs(campaign, crm, django_capture_on_commit_callbacks)

    # Then the agent and the manager each get one notice, tagged per campaign and agent
    assert agent.paused is True
    tag = f"unitalk:campaign:{campaign.pk}:agent:5"
    assert [(n["USER_ID"], n["TAG"]) for n in crm.notices] == [
        (5, tag),
        (1, f"{tag}:manager"),
    ]
    to_agent, to_manager = (n["MESSAGE"] for n in crm.notices)
    assert "You did not pick up 2 calls in a row" in to_agent
    assert "Spring leads" in to_agent
    assert "Oleg Operator did not pick up 2 calls in a row" in to_manager
    rows = Notification.objects.filter(kind=services.KIND_AGENT_PAUSED, resolved_at=None)
    assert sorted(rows.values_list("user_id", flat=True)) == [1, 5]

    # When the agent resumes, both problems close (their banners go)
    services.campaign_agent_pause(agent=agent, paused=False)
    assert not rows.exists()


def test_a_repeated_leg_pause_notice_replaces_the_open_one(
    campaign, crm, dials, django_capture_on_commit_callbacks
):
    # Given an agent already told they were paused
    agent = _pause_by_two_legs(campaign, crm, django_capture_on_commit_callbacks)

    # When the dialer pauses them again before they resumed
    with django_capture_on_commit_callbacks(execute=True):
        services.agent_pause_notify(agent=agent, campaign=campaign, failures=2)
    run_jobs()

    # Then each audience keeps one open row and Bitrix24 gets the same TAG again
    rows = Notification.objects.filter(kind=services.KIND_AGENT_PAUSED, resolved_at=None)
    assert sorted(rows.values_list("count", flat=True)) == [2, 2]
    assert len({n["TAG"] for n in crm.notices}) == 2


def test_unnormalisable_numbers_are_skipped_with_the_reason_and_duplicates_merged(campaign):
    counts = services.items_add(
        campaign=campaign,
        entries=[
            Entry(raw_phone="+380 50 111-00-01"),
            Entry(raw_phone="0501110001"),  # the same number, national form
            Entry(raw_phone="12345"),
            Entry(raw_phone="call me"),
            Entry(raw_phone=""),
        ],
    )

    assert counts == {"added": 1, "duplicate": 1, "invalid": 3}
    reasons = dict(CampaignItem.objects.filter(state="skipped").values_list("raw_phone", "reason"))
    assert reasons == {
        "12345": "a phone number has 10-15 digits, '12345' has 5",
        "call me": "not a phone number: 'call me'",
        "": "no phone number",
    }


def _presence(user_id: int, **fields) -> None:
    AgentState.objects.filter(bitrix_user_id=user_id).update(**fields)


def test_agent_paused_for_sync_failed_gets_no_campaign_call_and_resumes_when_cleared(
    campaign, crm, dials
):
    # Given agent 6's Unitalk status push failed for good: PAUSED(sync_failed), docs/agents.md §5.1
    _enrol(campaign, crm, "+380501110001", "+380501110002", "+380501110003")
    _running(campaign)
    _presence(6, push_failed=True)

    # When the campaign ticks
    first = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    # Then only agent 5 (line 101) is offered a number
    assert first["dialled"] == 1
    assert [d["sip"] for d in dials] == ["101"]

    # When the push succeeds again (the pause is cleared) and the campaign ticks
    _presence(6, push_failed=False)
    second = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    # Then agent 6 gets the next number
    assert second["dialled"] == 1
    assert [d["sip"] for d in dials] == ["101", "102"]


def test_stale_polling_pauses_every_agent_for_the_dialer_until_a_reading_succeeds(
    campaign, crm, dials, settings
):
    # Given Bitrix24 could not be read for the allowed number of poll periods
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    _running(campaign)
    sync = agent_services.agent_sync_get(portal=campaign.portal)
    AgentSync.objects.filter(pk=sync.pk).update(poll_failures=settings.AGENT_STALE_PERIODS)

    stale = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()
    assert stale["dialled"] == 0
    assert dials == []

    # When a poll succeeds again
    AgentSync.objects.filter(pk=sync.pk).update(poll_failures=0)
    fresh = tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert fresh["dialled"] == 2
    assert sorted(d["sip"] for d in dials) == ["101", "102"]


@pytest.mark.parametrize(
    "presence",
    [
        {"toggle": Toggle.BREAK},
        {"toggle": Toggle.OFFLINE},
        {"timeman_status": "CLOSED"},
        {"timeman_status": "PAUSED"},
        {"timeman_status": "EXPIRED"},
        {"time_tracking": False, "user_online": False},
        {"polled_at": None},
        {"user_active": False},
    ],
    ids=[
        "break",
        "offline",
        "day-closed",
        "day-paused",
        "day-expired",
        "not-online",
        "never-read",
        "inactive",
    ],
)
def test_agent_not_present_is_never_offered_a_campaign_call(campaign, crm, dials, presence):
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    _running(campaign)
    _presence(6, **presence)

    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert [d["sip"] for d in dials] == ["101"]


def test_agent_without_a_presence_row_is_not_available(campaign, crm, dials):
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    _running(campaign)
    AgentState.objects.filter(bitrix_user_id=6).delete()

    tick.campaign_tick(campaign_id=campaign.pk)
    run_jobs()

    assert [d["sip"] for d in dials] == ["101"]


def test_a_campaign_fed_one_by_one_waits_for_numbers_instead_of_finishing(campaign, crm, dials):
    # Given a manual campaign (robot, CSV) whose only number was answered
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    tick.campaign_tick(campaign_id=campaign.pk)
    _end(Attempt.objects.select_related("item", "call_sync").get(outcome=""), "ANSWER")

    # When it ticks with nothing left to dial
    result = tick.campaign_tick(campaign_id=campaign.pk)

    # Then it keeps running, waiting for the robot's next number
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING
    assert result["waiting"] == "waiting for numbers"
    assert "finished" not in result


def test_an_agent_who_paused_while_the_dial_waited_is_not_dialled_and_the_number_requeued(
    campaign, crm, dials
):
    # Given the tick gave agent 6 a number while they were available
    _enrol(campaign, crm, "+380501110001")
    _running(campaign)
    _presence(5, push_failed=True)
    assert tick.campaign_tick(campaign_id=campaign.pk)["dialled"] == 1
    attempt = Attempt.objects.get()
    assert attempt.agent_user_id == 6

    # When agent 6 pauses before the dial job ran (it waited: Unitalk faults, a lost worker)
    _presence(6, push_failed=True)
    run_jobs()

    # Then Unitalk is never asked; the attempt is settled as not dialled, the number requeued
    # uncharged and the agent free again (tests/e2e/test_campaign_chaos.py found the late dial)
    assert dials == []
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.charged) == (Attempt.Outcome.SKIPPED, False)
    item = CampaignItem.objects.get()
    assert (item.state, item.attempts) == (CampaignItem.State.PENDING, 0)
    assert CampaignAgent.objects.get(bitrix_user_id=6).current_attempt_id is None


def test_a_number_claimed_by_a_tick_that_died_before_dialling_goes_back_to_the_queue(
    campaign, crm, dials
):
    # Given a tick claimed two numbers and dialled one, then its worker was killed (claim and
    # attempt commit apart: tests/e2e/test_campaign_chaos.py left such numbers "calling" forever)
    _enrol(campaign, crm, "+380501110001", "+380501110002")
    _running(campaign)
    now = timezone.now()
    orphan = tick.item_claim(campaign=campaign, now=now)
    dialled = tick.item_claim(campaign=campaign, now=now)
    agent = CampaignAgent.objects.get(bitrix_user_id=5)
    assert tick.attempt_dial(campaign=campaign, agent=agent, item=dialled) is not None

    # When a later tick sweeps, before and after CAMPAIGN_CLAIM_STALE_S (60 s)
    early = sweep.attempts_sweep(campaign=campaign, now=now + timedelta(seconds=30))
    late = sweep.attempts_sweep(campaign=campaign, now=now + timedelta(seconds=61))

    # Then only the orphan is released, once it is stale; the dialled number stays calling
    assert (early["released"], late["released"]) == (0, 1)
    states = dict(CampaignItem.objects.values_list("pk", "state"))
    assert states == {orphan.pk: "pending", dialled.pk: "calling"}
