"""Operator mapping: auto from UF_PHONE_INNER, manual wins, unmapped lines reported."""

from __future__ import annotations

import pytest

from integration.models import Notification
from integration.unitalk import selectors, services
from integration.unitalk.models import OperatorMapping

from .conftest import API, payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def bitrix_users(monkeypatch):
    users = [
        {"ID": "7", "NAME": "Olena", "UF_PHONE_INNER": "2000"},
        {"ID": "8", "NAME": "Ivan", "UF_PHONE_INNER": "2001"},
        {"ID": "9", "NAME": "No phone", "UF_PHONE_INNER": ""},
    ]
    monkeypatch.setattr(services, "_bitrix_users", lambda portal: users)
    return users


@pytest.fixture
def unitalk_users(rsps):
    rsps.post(f"{API}/users/list", json=payload("users_list"))


def test_lines_are_matched_to_users_by_inner_phone(portal, connection, bitrix_users, unitalk_users):
    services.operators_sync(portal=portal)

    assert selectors.operator_line_for_user(portal, 7) == "2000"
    assert selectors.operator_user_for_line(portal, "2001") == 8
    assert selectors.operator_line_for_user(portal, 9) is None


def test_lines_without_a_user_are_reported_to_admins(
    portal, connection, bitrix_users, unitalk_users
):
    result = services.operators_sync(portal=portal)

    assert result["unmapped"] == ["2002"]
    notice = Notification.objects.get(tag=services.TAG_UNMAPPED_LINES)
    assert "2002" in notice.message


def test_manual_mapping_is_kept_over_auto_match(portal, connection, bitrix_users, unitalk_users):
    services.operator_map_manual(portal=portal, bitrix_user_id=42, line="2000")

    services.operators_sync(portal=portal)

    assert selectors.operator_user_for_line(portal, "2000") == 42
    assert selectors.operator_line_for_user(portal, 7) is None
    assert OperatorMapping.objects.get(line="2000").source == "manual"


def test_auto_mapping_follows_a_changed_inner_phone(
    portal, connection, bitrix_users, unitalk_users
):
    services.operators_sync(portal=portal)
    bitrix_users[0]["UF_PHONE_INNER"] = "2002"

    services.operators_sync(portal=portal)

    assert selectors.operator_line_for_user(portal, 7) == "2002"
    assert selectors.operator_user_for_line(portal, "2000") is None


def test_resync_with_everything_mapped_resolves_the_report(
    portal, connection, bitrix_users, unitalk_users
):
    services.operators_sync(portal=portal)
    bitrix_users.append({"ID": "10", "UF_PHONE_INNER": "2002"})

    services.operators_sync(portal=portal)

    assert not Notification.objects.filter(resolved_at__isnull=True).exists()


def test_matching_reports_its_steps_for_the_settings_page(
    portal, connection, bitrix_users, unitalk_users
):
    from integration.core import progress

    services.operators_sync(portal=portal)
    assert progress.progress_get(kind=services.KIND_OPERATORS_SYNC, portal_id=portal.pk) == {
        "done": 3,
        "total": 3,
        "step": "done",
    }
