"""The routing page and its actions (docs/routing.md "Settings", "Pages"): the chain saved
whole or refused with an error the admin can act on and nothing stored; the one-click dial only
for the person asked; rerouted calls with their path in three languages; portals apart."""

from __future__ import annotations

import json

import pytest

from integration.agents.models import AgentState
from integration.calls.models import CallSync
from integration.models import Job
from integration.routing import chain, services
from integration.routing.models import Reroute, RoutingOverride, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, token

pytestmark = pytest.mark.django_db(transaction=True)

ALL_ON = [{"step": s, "on": True} for s in Step.values]


def post(client, path, body, headers):
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def lines(portal):
    for uid in (1, 2, 3):
        OperatorMapping.objects.create(portal=portal, bitrix_user_id=uid, line=str(100 + uid))
        AgentState.objects.create(portal=portal, bitrix_user_id=uid, line=str(100 + uid),
                                  name=f"User {uid}")  # fmt: skip


def reroute(portal, *, to_user: int = 2) -> Reroute:
    sync = CallSync.objects.create(
        portal=portal, origin=CallSync.Origin.CLICK_TO_CALL, user_id=1, phone_number="380501112233"
    )
    return Reroute.objects.create(
        portal=portal, sync=sync, trigger="line_unreachable", state=Reroute.State.ASKED,
        from_user_id=1, phone_number="380501112233", step=Step.DEPARTMENT, to_user_id=to_user,
        to_name="Oleg Operator", to_line="102",
        path=[{"step": Step.OWN_LINE, "why": chain.WHY_OWN_FAILED, "outcome": "skipped",
               "trigger": "line_unreachable"},
              {"step": Step.BACKUP_LINE, "why": chain.WHY_NO_BACKUP, "outcome": "skipped"},
              {"step": Step.DEPARTMENT, "why": chain.WHY_CHOSEN, "outcome": "chosen",
               "user": to_user, "name": "Oleg Operator", "line": "102"}],
    )  # fmt: skip


def test_the_chain_is_saved_in_order_with_its_mode_and_duty_line(client, portal, lines):
    steps = [ALL_ON[0], ALL_ON[3], ALL_ON[1], ALL_ON[2], {"step": "duty_line", "on": False},
             ALL_ON[5]]  # fmt: skip
    body = {"steps": steps, "mode": "dial", "duty_line": "103", "escalate_after_min": 15}
    r = post(client, "/bitrix/actions/routing/policy/", body, token(portal))
    assert r.status_code == 200
    policy = RoutingPolicy.objects.get(portal=portal)
    assert [s["step"] for s in policy.steps][:2] == ["own_line", "department"]
    assert (policy.mode, policy.duty_line, policy.escalate_after_min) == ("dial", "103", 15)
    assert policy.callbacks_in_dialer is True  # the default when not sent


def test_callbacks_in_the_dialer_can_be_turned_off(client, portal, lines):
    body = {"steps": ALL_ON, "callbacks_in_dialer": False}
    r = post(client, "/bitrix/actions/routing/policy/", body, token(portal))
    assert r.status_code == 200
    assert RoutingPolicy.objects.get(portal=portal).callbacks_in_dialer is False
    assert r.json()["policy"]["callbacks_in_dialer"] is False


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"steps": [{"step": s, "on": s == "callback"} for s in Step.values]}, "steps",
         "Turn at least one step on"),
        ({"steps": [*ALL_ON[:5], {"step": "callback", "on": False}]}, "steps", "must be the last"),
        ({"steps": [ALL_ON[5], *ALL_ON[:5]]}, "steps", "must be the last"),
        ({"steps": [*ALL_ON[:4], {"step": "voicemail"}, ALL_ON[5]]}, "steps", "Unknown step"),
        ({"steps": [ALL_ON[0], ALL_ON[0], *ALL_ON[2:]]}, "steps", "listed twice"),
        ({"steps": ALL_ON[3:]}, "steps", "List every step once"),
        ({"steps": ALL_ON, "duty_line": "555"}, "duty_line", "not mapped to any user"),
        ({"steps": ALL_ON, "mode": "surprise"}, "mode", "ask first or dial"),
        ({"steps": ALL_ON, "escalate_after_min": "soon"}, "escalate_after_min", "1 to 1440"),
        ({"steps": "all"}, "steps", "as a list"),
        ({"steps": ALL_ON, "callbacks_in_dialer": "yes"}, "callbacks_in_dialer", "on or off"),
    ],
)  # fmt: skip
def test_a_bad_chain_is_refused_naming_the_fix_and_nothing_is_stored(
    client, portal, lines, body, field, text
):
    r = post(client, "/bitrix/actions/routing/policy/", body, token(portal))
    assert r.status_code == 400
    assert text in r.json()["errors"][field]
    assert not RoutingPolicy.objects.filter(portal=portal).exists()


def test_a_backup_loop_a_b_a_is_refused_and_the_first_link_kept(client, portal, lines):
    ok = post(client, "/bitrix/actions/routing/overrides/", {"user_id": 1, "backup_line": "102"},
              token(portal))  # fmt: skip
    assert ok.status_code == 200
    r = post(client, "/bitrix/actions/routing/overrides/", {"user_id": 2, "backup_line": "101"},
             token(portal))  # fmt: skip
    assert r.status_code == 400
    assert "form a loop (users 2 → 1 → 2)" in r.json()["errors"]["backup_line"]
    assert list(RoutingOverride.objects.values_list("bitrix_user_id", "backup_line")) == [
        (1, "102")
    ]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"user_id": 1, "backup_line": "999"}, "backup_line", "not mapped to any user"),
        ({"user_id": 1, "backup_line": "101"}, "backup_line", "not be the user's own line"),
        ({"user_id": 42, "backup_line": "102"}, "user_id", "not a Bitrix24 user with a Unitalk"),
        ({"user_id": "x"}, "user_id", "as a number"),
    ],
)
def test_a_bad_override_is_refused_and_nothing_is_stored(client, portal, lines, body, field, text):
    r = post(client, "/bitrix/actions/routing/overrides/", body, token(portal))
    assert r.status_code == 400
    assert text in r.json()["errors"][field]
    assert not RoutingOverride.objects.exists()


def test_an_override_for_a_deleted_user_is_refused(client, portal, lines):
    AgentState.objects.filter(bitrix_user_id=3).update(user_missing=True)
    r = post(client, "/bitrix/actions/routing/overrides/", {"user_id": 3, "backup_line": "101"},
             token(portal))  # fmt: skip
    assert r.status_code == 400
    assert "deleted" in r.json()["errors"]["user_id"]


def test_only_admins_change_the_chain(client, portal, lines):
    r = post(client, "/bitrix/actions/routing/policy/", {"steps": ALL_ON},
             token(portal, user_id=2, admin=False))  # fmt: skip
    assert r.status_code == 403


def test_the_one_click_dial_is_for_the_person_asked_only(client, portal, other_portal, lines):
    row = reroute(portal, to_user=2)
    path = f"/bitrix/actions/routing/reroutes/{row.pk}/dial/"
    assert post(client, path, {}, token(portal, user_id=3, admin=False)).status_code == 403
    assert post(client, path, {}, token(other_portal, user_id=2, admin=True)).status_code == 403
    r = post(client, path, {}, token(portal, user_id=2, admin=False))
    assert r.status_code == 202
    assert Job.objects.filter(kind=services.KIND_DIAL, payload__reroute_id=row.pk).count() == 1
    assert post(client, "/bitrix/actions/routing/reroutes/99x/dial/", {},
                token(portal)).status_code == 400  # fmt: skip


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "own line failed (the line did not ring) → Oleg Operator"),
        ("uk", "Oleg Operator"),
        ("ru", "Oleg Operator"),
    ],
)
def test_the_page_shows_rerouted_calls_with_their_path(client, portal, rsps, lines, lang, text):
    reroute(portal)
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/routing/", lang=lang).content.decode()
    assert text in html
    assert 'id="chain-steps"' in html
    assert 'data-dial="' not in html  # user 1 was not asked
    if lang != "en":
        assert "own line failed" not in html  # translated


@pytest.mark.parametrize("path", ["/bitrix/app/", "/bitrix/app/routing/", "/bitrix/app/agents/"])
def test_unitalk_down_is_a_banner_on_every_app_page(client, portal, rsps, path):
    from integration.core import alerts

    alerts.notification_raise(
        portal=portal, kind="routing.unitalk_down", tag=services.TAG_UNITALK_DOWN, message="x"
    )
    fake_profile(rsps)
    html = enter(client, portal, path).content.decode()
    assert 'data-kind="routing.unitalk_down"' in html
    assert "Unitalk unavailable: clicks to call cannot be dialled now." in html


# A user's own chain (docs/routing.md "Pages"): the same steps and rules as the portal's.

OWN = [ALL_ON[3], {"step": "own_line", "on": False}, *ALL_ON[1:3], ALL_ON[4], ALL_ON[5]]
OVERRIDES = "/bitrix/actions/routing/overrides/"


def test_a_users_own_chain_is_stored_in_order_and_shown_as_theirs(client, portal, rsps, lines):
    r = post(client, OVERRIDES, {"user_id": 2, "backup_line": "103", "steps": OWN}, token(portal))
    assert r.status_code == 200
    stored = RoutingOverride.objects.get(portal=portal, bitrix_user_id=2)
    assert stored.steps == OWN
    assert stored.backup_line == "103"
    mine = next(o for o in r.json()["overrides"] if o["user_id"] == 2)
    assert mine["own_steps"] is True
    assert [s["step"] for s in mine["steps"]][:2] == ["department", "own_line"]
    # the page: user 2's row says own chain, with their order; user 3's the portal's
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/routing/").content.decode()
    row2 = html[html.index('<tr data-user="2"') :].split("</tr>")[0]
    row3 = html[html.index('<tr data-user="3"') :].split("</tr>")[0]
    assert 'data-own="1"' in row2
    assert 'data-own="0"' in row3
    assert '<option value="own" selected>' in row2
    assert row2.index('data-step="department"') < row2.index('data-step="own_line"')
    assert '<option value="103" selected>' in row2
    assert "<ol data-steps hidden>" in row3


def test_choosing_the_portals_chain_keeps_the_backup_line_and_drops_own_steps(
    client, portal, lines
):
    post(client, OVERRIDES, {"user_id": 2, "backup_line": "103", "steps": OWN}, token(portal))
    r = post(client, OVERRIDES, {"user_id": 2, "backup_line": "103", "steps": None}, token(portal))
    assert r.status_code == 200
    stored = RoutingOverride.objects.get(portal=portal, bitrix_user_id=2)
    assert (stored.backup_line, stored.steps) == ("103", None)


@pytest.mark.parametrize(
    "clear",
    [
        lambda client, portal: post(client, f"{OVERRIDES}2/delete/", {}, token(portal)),
        lambda client, portal: post(client, OVERRIDES, {"user_id": 2, "backup_line": "",
                                                        "steps": None}, token(portal)),
    ],
    ids=["clear", "nothing-left"],
)  # fmt: skip
def test_clearing_an_override_returns_the_user_to_the_portals_chain(
    client, portal, rsps, lines, clear
):
    post(client, OVERRIDES, {"user_id": 2, "backup_line": "103", "steps": OWN}, token(portal))
    r = clear(client, portal)
    assert r.status_code == 200
    assert r.json()["overrides"] == []
    assert not RoutingOverride.objects.filter(portal=portal).exists()
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/routing/").content.decode()
    row2 = html[html.index('<tr data-user="2"') :].split("</tr>")[0]
    assert 'data-own="0"' in row2
    assert "data-clear-override hidden" in row2


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"steps": [*ALL_ON[:4], {"step": "voicemail"}, ALL_ON[5]]}, "steps", "Unknown step"),
        ({"steps": [ALL_ON[0], ALL_ON[0], *ALL_ON[2:]]}, "steps", "listed twice"),
        ({"steps": [{"step": s, "on": s == "callback"} for s in Step.values]}, "steps",
         "Turn at least one step on"),
        ({"steps": [ALL_ON[5], *ALL_ON[:5]]}, "steps", "must be the last"),
        ({"steps": ALL_ON[2:]}, "steps", "List every step once"),
        ({"steps": OWN, "backup_line": "999"}, "backup_line", "not mapped to any user"),
        ({"steps": OWN, "backup_line": "101"}, "backup_line", "form a loop (users 2 → 1 → 2)"),
        ({"steps": OWN, "user_id": 42}, "user_id", "not a Bitrix24 user with a Unitalk"),
    ],
)  # fmt: skip
def test_a_bad_own_chain_is_refused_next_to_its_field_and_nothing_is_stored(
    client, portal, lines, body, field, text
):
    # given: user 1 → 2 and user 2's earlier own chain (steps all on)
    post(client, OVERRIDES, {"user_id": 1, "backup_line": "102"}, token(portal))
    post(client, OVERRIDES, {"user_id": 2, "steps": ALL_ON}, token(portal))
    before = sorted(RoutingOverride.objects.values_list("bitrix_user_id", "backup_line", "steps"))
    r = post(client, OVERRIDES, {"user_id": 2, **body}, token(portal))
    assert r.status_code == 400
    assert text in r.json()["errors"][field]
    after = sorted(RoutingOverride.objects.values_list("bitrix_user_id", "backup_line", "steps"))
    assert after == before


def test_an_own_chain_for_a_deleted_user_is_refused(client, portal, lines):
    AgentState.objects.filter(bitrix_user_id=3).update(user_missing=True)
    r = post(client, OVERRIDES, {"user_id": 3, "steps": OWN}, token(portal))
    assert r.status_code == 400
    assert "deleted" in r.json()["errors"]["user_id"]
    assert not RoutingOverride.objects.exists()


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "Turn at least one step on"),
        ("uk", "Увімкніть хоча б один крок"),  # noqa: RUF001 (Ukrainian text)
        ("ru", "Включите хотя бы один шаг"),
    ],
)
def test_the_field_errors_are_in_the_users_language(client, portal, lines, lang, text):
    off = [{"step": s, "on": s == "callback"} for s in Step.values]
    headers = token(portal) | {"HTTP_X_APP_LANG": lang}
    r = post(client, OVERRIDES, {"user_id": 2, "steps": off}, headers)
    assert r.status_code == 400
    assert text in r.json()["errors"]["steps"]
    r = post(client, "/bitrix/actions/routing/policy/", {"steps": off}, headers)
    assert text in r.json()["errors"]["steps"]


def test_only_admins_change_a_users_chain(client, portal, rsps, lines):
    post(client, OVERRIDES, {"user_id": 2, "steps": OWN}, token(portal))
    operator = token(portal, user_id=2, admin=False)
    assert post(client, OVERRIDES, {"user_id": 2, "steps": ALL_ON}, operator).status_code == 403
    assert post(client, f"{OVERRIDES}2/delete/", {}, operator).status_code == 403
    assert RoutingOverride.objects.get(portal=portal, bitrix_user_id=2).steps == OWN
    # and a non-admin's page has no chain editor
    fake_profile(rsps, user_id="2", admin=False)
    html = enter(client, portal, "/bitrix/app/routing/").content.decode()
    assert 'id="user-chains"' not in html


def test_a_users_chain_stays_in_its_portal(client, portal, other_portal, rsps, lines):
    post(client, OVERRIDES, {"user_id": 2, "steps": OWN}, token(portal))
    # the other portal's admin: user 2 has no line there, and clearing theirs clears nothing here
    r = post(client, OVERRIDES, {"user_id": 2, "steps": ALL_ON}, token(other_portal))
    assert r.status_code == 400
    assert "user_id" in r.json()["errors"]
    r = post(client, f"{OVERRIDES}2/delete/", {}, token(other_portal))
    assert r.status_code == 200
    assert r.json()["overrides"] == []
    assert RoutingOverride.objects.get(portal=portal, bitrix_user_id=2).steps == OWN
    assert not RoutingOverride.objects.filter(portal=other_portal).exists()
