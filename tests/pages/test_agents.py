"""Agent status pages and actions: the panel says why, agents change only their own toggle,
administrators everything else, another portal's agents are out of reach, bad input is 400."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from integration.agents.models import AgentState, AgentSync, Reason, State, Toggle
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, token

pytestmark = pytest.mark.django_db(transaction=True)


def make_agent(portal, user_id: int, **fields) -> AgentState:
    defaults = {"line": str(100 + user_id), "name": f"Agent {user_id}", "polled_at": timezone.now()}
    return AgentState.objects.create(portal=portal, bitrix_user_id=user_id, **(defaults | fields))


def post(client, path, body, headers):
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def test_panel_lists_the_portals_agents_with_state_reason_and_since(client, portal, other_portal):
    make_agent(portal, 2, state=State.PAUSED, reason=Reason.DAY_CLOSED)
    make_agent(other_portal, 3)
    data = client.get("/bitrix/actions/agents/", **token(portal, user_id=2, admin=False)).json()
    assert [a["user_id"] for a in data["agents"]] == [2]
    row = data["agents"][0]
    assert row["summary"].startswith("Paused: work day not open in Bitrix24 since ")
    assert row["line"] == "102"
    assert row["last_sync_label"] != "—"


def test_an_agent_sets_their_own_toggle(client, portal):
    make_agent(portal, 2, state=State.AVAILABLE)
    r = post(
        client,
        "/bitrix/actions/agents/me/",
        {"toggle": "break", "note": "lunch"},
        token(portal, user_id=2, admin=False),
    )
    assert r.status_code == 200
    assert (r.json()["agent"]["state"], r.json()["agent"]["reason"]) == (State.PAUSED, Reason.BREAK)
    agent = AgentState.objects.get(bitrix_user_id=2)
    assert (agent.toggle, agent.toggle_note) == (Toggle.BREAK, "lunch")
    assert agent.transitions.first().source == "toggle"


@pytest.mark.parametrize(
    "body", [{"toggle": "sleeping"}, {"toggle": "break", "note": "x" * 300}, {"toggle": None}, []]
)
def test_bad_toggles_are_refused_and_nothing_changes(client, portal, body):
    make_agent(portal, 2)
    r = post(client, "/bitrix/actions/agents/me/", body, token(portal, user_id=2, admin=False))
    assert r.status_code == 400
    assert AgentState.objects.get(bitrix_user_id=2).toggle == Toggle.AVAILABLE


def test_a_user_without_a_line_is_told_so(client, portal):
    r = client.get("/bitrix/actions/agents/me/", **token(portal, user_id=7, admin=False))
    assert r.json() == {"agent": None, "message": "You have no Unitalk line."}


def test_only_administrators_change_someone_elses_state(client, portal):
    agent = make_agent(portal, 2)
    path = f"/bitrix/actions/agents/{agent.pk}/toggle/"
    assert (
        post(client, path, {"toggle": "offline"}, token(portal, user_id=3, admin=False)).status_code
        == 403
    )
    assert (
        post(
            client,
            f"/bitrix/actions/agents/{agent.pk}/retry/",
            {},
            token(portal, user_id=3, admin=False),
        ).status_code
        == 403
    )
    r = post(client, path, {"toggle": "offline"}, token(portal))
    assert r.json()["agent"]["reason"] == Reason.MANUAL


def test_another_portals_agent_is_not_found(client, portal, other_portal):
    theirs = make_agent(other_portal, 2)
    r = post(
        client, f"/bitrix/actions/agents/{theirs.pk}/toggle/", {"toggle": "offline"}, token(portal)
    )
    assert r.status_code == 403
    assert AgentState.objects.get(pk=theirs.pk).toggle == Toggle.AVAILABLE
    assert (
        post(
            client, "/bitrix/actions/agents/abc/toggle/", {"toggle": "offline"}, token(portal)
        ).status_code
        == 400
    )


def test_sync_switches_are_admin_only_booleans(client, portal):
    assert (
        post(
            client,
            "/bitrix/actions/agents/settings/",
            {"push_enabled": True},
            token(portal, admin=False),
        ).status_code
        == 403
    )
    r = post(client, "/bitrix/actions/agents/settings/", {"push_enabled": "yes"}, token(portal))
    assert r.status_code == 400
    assert not AgentSync.objects.filter(portal=portal, push_enabled=True).exists()
    r = post(client, "/bitrix/actions/agents/settings/", {"reverse_enabled": True}, token(portal))
    assert r.json()["sync"]["reverse_enabled"] is True


def test_agents_page_and_overview_show_presence(client, portal, rsps):
    make_agent(portal, 1, state=State.PAUSED, reason=Reason.DAY_CLOSED)
    make_agent(portal, 2, state=State.AVAILABLE)
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/agents/").content.decode()
    assert 'id="agents-table"' in html
    assert "work day not open in Bitrix24" in html
    assert 'id="push-enabled"' in html  # admin sees the switches
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'id="presence-available"' in html
    assert 'id="toggle-break"' in html


def test_a_mapped_user_not_yet_read_is_not_told_they_have_no_line(client, portal, rsps):
    # given: user 1 has line 101, and the roster has not been polled yet (no presence row)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert "You have no Unitalk line." not in html
    assert "Line 101: your status is read from Bitrix24 within a minute." in html


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("uk", "Пауза: робочий день не відкрито в Бітрікс24 з "),  # noqa: RUF001
        ("ru", "Пауза: рабочий день не открыт в Битрикс24 с "),  # noqa: RUF001
    ],
)
def test_the_reason_reads_in_the_users_language(client, portal, lang, text):
    make_agent(portal, 2, state=State.PAUSED, reason=Reason.DAY_CLOSED)
    r = client.get("/bitrix/actions/agents/", HTTP_X_APP_LANG=lang, **token(portal))
    assert r.json()["agents"][0]["summary"].startswith(text)


def test_a_sync_problem_is_on_the_problems_list_with_the_way_to_retry(client, portal, rsps):
    from integration.core import alerts

    alerts.notification_raise(
        portal=portal, kind="agents.sync_failed", tag="unitalk-status:2:manager", message="x"
    )
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'data-kind="agents.sync_failed"' in html
    assert "Agent status sync failed" in html
    assert 'data-go="/bitrix/app/agents/"' in html
