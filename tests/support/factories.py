"""One factory per model the tests build by hand (factory_boy), instead of copies of
`Portal.objects.create(...)` in every package's fixtures."""

from __future__ import annotations

import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from bitrixapp.models import Portal
from integration.agents.models import AgentState, State


class PortalFactory(factory.django.DjangoModelFactory):
    """An installed portal. `PortalFactory(with_tokens=True)` also holds a live OAuth pair."""

    class Meta:
        model = Portal

    member_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    domain = "acme.bitrix24.com"
    client_endpoint = factory.LazyAttribute(lambda portal: f"https://{portal.domain}/rest/")
    status = Portal.Status.ACTIVE

    class Params:
        with_tokens = factory.Trait(
            application_token=factory.LazyFunction(lambda: "apptoken-" + uuid.uuid4().hex),
            access_token="access-1",
            refresh_token="refresh-1",
            access_expires_at=factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1)),
        )


class AgentStateFactory(factory.django.DjangoModelFactory):
    """An agent who is there: a line, a fresh Bitrix24 reading, the work day open
    (docs/agents.md §5.1: what `agent_can_take_dialer_call` needs to say yes)."""

    class Meta:
        model = AgentState

    portal = factory.SubFactory(PortalFactory)
    bitrix_user_id = factory.Sequence(lambda n: 100 + n)
    line = factory.LazyAttribute(lambda agent: str(agent.bitrix_user_id))
    name = factory.LazyAttribute(lambda agent: f"Agent {agent.bitrix_user_id}")
    state = State.AVAILABLE
    timeman_status = "OPENED"
    time_tracking = True
    user_active = True
    user_online = True
    polled_at = factory.LazyFunction(timezone.now)
