"""The snapshot the chain is evaluated on uses the caller's own steps when an admin gave them
some (docs/routing.md "The chain": the portal's chain, overridable per user), and the portal's
for everybody else, or again once the override is cleared."""

from __future__ import annotations

from typing import cast

import pytest
from django.utils import timezone

from bitrixapp.models import Portal
from integration.agents.models import AgentState, State
from integration.calls.models import CallSync
from integration.routing import chain, facts, policy
from integration.routing.models import RoutingOverride, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping
from tests.support.factories import PortalFactory

pytestmark = pytest.mark.django_db

#: The user's own chain: the duty line first, the department off.
OWN = [
    {"step": Step.DUTY_LINE, "on": True},
    {"step": Step.OWN_LINE, "on": True},
    {"step": Step.BACKUP_LINE, "on": True},
    {"step": Step.RESPONSIBLE, "on": True},
    {"step": Step.DEPARTMENT, "on": False},
    {"step": Step.CALLBACK, "on": True},
]


@pytest.fixture
def portal():
    portal = cast(Portal, PortalFactory(with_tokens=True))  # factory_boy returns the model
    for uid in (1, 2, 3, 4):
        OperatorMapping.objects.create(portal=portal, bitrix_user_id=uid, line=str(100 + uid))
        AgentState.objects.create(
            portal=portal, bitrix_user_id=uid, line=str(100 + uid), name=f"Agent {uid}",
            state=State.AVAILABLE, time_tracking=False, user_active=True, user_online=True,
            polled_at=timezone.now(), departments=[1], toggle="available",
        )  # fmt: skip
    # The portal's chain: the department (users 2, 3) before the duty line (user 4).
    RoutingPolicy.objects.create(portal=portal, duty_line="104")
    return portal


def decide(portal, user_id: int) -> chain.Decision:
    row = CallSync.objects.create(
        portal=portal, origin=CallSync.Origin.CLICK_TO_CALL, user_id=user_id, phone_number="1"
    )
    snapshot = facts.facts_build(portal=portal, row=row, own_failed="no_line", look_up=False)
    return chain.chain_evaluate(snapshot)


def test_a_users_own_steps_are_the_ones_evaluated(portal):
    # given: user 1 has their own chain, stored through the settings validation
    saved, errors = policy.override_save(portal=portal, user_id=1, data={"steps": OWN})
    assert errors == {}
    assert saved is not None
    # when: user 1's click fails
    decision = decide(portal, 1)
    # then: their duty-line-first chain decides, not the portal's department-first one
    assert decision.step == Step.DUTY_LINE
    assert decision.person is not None
    assert decision.person.user_id == 4
    assert decision.path[0]["step"] == Step.DUTY_LINE


def test_a_step_off_in_the_users_own_chain_is_skipped_as_off(portal):
    own = [{**s, "on": s["step"] in (Step.DEPARTMENT, Step.CALLBACK)} for s in OWN]
    own[4]["on"] = True  # only the department on
    RoutingOverride.objects.create(portal=portal, bitrix_user_id=1, steps=own)
    OperatorMapping.objects.filter(bitrix_user_id=4).delete()
    decision = decide(portal, 1)
    assert [(h["step"], h["why"]) for h in decision.path[:4]] == [
        (Step.DUTY_LINE, chain.WHY_OFF),
        (Step.OWN_LINE, chain.WHY_OFF),
        (Step.BACKUP_LINE, chain.WHY_OFF),
        (Step.RESPONSIBLE, chain.WHY_OFF),
    ]
    assert decision.step == Step.DEPARTMENT


def test_other_users_and_a_cleared_override_follow_the_portals_chain(portal):
    policy.override_save(portal=portal, user_id=1, data={"steps": OWN})
    # user 2 has no override: the portal's chain (the department first: user 1 or 3)
    assert decide(portal, 2).step == Step.DEPARTMENT
    # when: user 1's override is cleared (the portal's chain chosen, no backup line)
    saved, errors = policy.override_save(portal=portal, user_id=1, data={"steps": None})
    assert (saved, errors) == (None, {})
    assert not RoutingOverride.objects.filter(portal=portal).exists()
    # then: user 1 follows the portal's chain again
    assert decide(portal, 1).step == Step.DEPARTMENT


def test_a_backup_line_alone_keeps_the_portals_steps(portal):
    policy.override_save(portal=portal, user_id=1, data={"backup_line": "103", "steps": None})
    override = RoutingOverride.objects.get(portal=portal, bitrix_user_id=1)
    assert override.steps is None
    decision = decide(portal, 1)
    assert decision.step == Step.BACKUP_LINE
    assert decision.person is not None
    assert decision.person.user_id == 3
