"""presence_compute: every state and pause reason, and the precedence between inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from integration.agents.models import Reason, State, Toggle
from integration.agents.presence import Inputs, presence_compute

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
#: An agent who can take calls: line mapped, active, online, day open, tracking on.
READY = Inputs(now=NOW, time_tracking=True, timeman_status="OPENED")


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [
        ({}, State.AVAILABLE, ""),
        ({"has_line": False}, State.NO_LINE, ""),
        ({"user_missing": True}, State.INACTIVE, ""),
        ({"user_active": False}, State.INACTIVE, ""),
        ({"live_call": True}, State.BUSY, ""),
        ({"wrap_up_until": NOW + timedelta(seconds=5)}, State.WRAP_UP, ""),
        ({"wrap_up_until": NOW - timedelta(seconds=1)}, State.AVAILABLE, ""),
        ({"toggle": Toggle.BREAK}, State.PAUSED, Reason.BREAK),
        ({"toggle": Toggle.OFFLINE}, State.PAUSED, Reason.MANUAL),
        ({"push_failed": True}, State.PAUSED, Reason.SYNC_FAILED),
        ({"stale": True}, State.PAUSED, Reason.SYNC_FAILED),
        ({"line_failing": True}, State.PAUSED, Reason.LINE_FAILING),
        ({"timeman_status": "PAUSED"}, State.PAUSED, Reason.DAY_PAUSED),
        ({"timeman_status": "CLOSED"}, State.PAUSED, Reason.DAY_CLOSED),
        ({"timeman_status": "EXPIRED"}, State.PAUSED, Reason.DAY_EXPIRED),
        ({"user_online": False, "time_tracking": False}, State.PAUSED, Reason.OFFLINE),
    ],
)
def test_each_input_gives_its_state_and_reason(change, state, reason):
    presence = presence_compute(replace(READY, **change))
    assert (presence.state, presence.reason) == (state, reason)


def test_a_live_call_wins_over_every_pause():
    paused = replace(READY, toggle=Toggle.OFFLINE, timeman_status="CLOSED", push_failed=True)
    assert presence_compute(replace(paused, live_call=True)).state == State.BUSY


def test_no_line_and_inactive_win_over_a_live_call():
    assert presence_compute(replace(READY, live_call=True, has_line=False)).state == State.NO_LINE
    assert presence_compute(replace(READY, live_call=True, user_active=False)).state == (
        State.INACTIVE
    )


def test_the_agents_break_wins_over_a_closed_day():
    presence = presence_compute(replace(READY, toggle=Toggle.BREAK, timeman_status="CLOSED"))
    assert presence.reason == Reason.BREAK


def test_sync_failure_is_reported_before_the_work_day():
    presence = presence_compute(replace(READY, push_failed=True, timeman_status="CLOSED"))
    assert presence.reason == Reason.SYNC_FAILED


def test_with_time_tracking_on_an_open_day_is_enough_even_offline():
    # Bitrix24's rule (docs/agents.md §1.3): online OR a phone; the agent has a Unitalk line.
    assert presence_compute(replace(READY, user_online=False)).state == State.AVAILABLE


@pytest.mark.parametrize(
    "change",
    [
        {"time_tracking": False, "timeman_status": "CLOSED"},
        {"timeman_missing": True, "timeman_status": "CLOSED"},
        {"timeman_status": "UNAVAILABLE"},  # searchCrmEntities: tracking off for the user
        {"timeman_status": "NOT_INSTALLED"},  # searchCrmEntities: module missing
    ],
)
def test_without_time_tracking_the_toggle_and_online_state_decide(change):
    without = replace(READY, **change)
    assert presence_compute(without).state == State.AVAILABLE
    assert presence_compute(replace(without, user_online=False)).reason == Reason.OFFLINE
    assert presence_compute(replace(without, toggle=Toggle.BREAK)).reason == Reason.BREAK


def test_an_unknown_timeman_answer_is_not_open():
    presence = presence_compute(replace(READY, timeman_status="SOMETHING_NEW"))
    assert (presence.state, presence.reason) == (State.PAUSED, Reason.DAY_CLOSED)
    assert "SOMETHING_NEW" in presence.detail


def test_tracking_on_but_no_reading_yet_is_not_available():
    presence = presence_compute(replace(READY, timeman_status=""))
    assert (presence.state, presence.reason) == (State.PAUSED, Reason.DAY_CLOSED)


def test_unknown_settings_follow_bitrix24s_default_of_tracking_on():
    presence = presence_compute(replace(READY, time_tracking=None, timeman_status="CLOSED"))
    assert presence.reason == Reason.DAY_CLOSED
