"""Helpers shared by the CRM, call-list, robot and to-do tests of the portal simulator."""

from __future__ import annotations

from typing import Any

import requests


def control(sandbox: Any, portal: dict[str, Any], action: str, **payload: Any) -> requests.Response:
    """POST a portal control action (`/_sandbox/portals/<member_id>/<action>`)."""
    url = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/{action}"
    return requests.post(url, json=payload, timeout=30)


def seed(sandbox: Any, portal: dict[str, Any], entity_type_id: int, count: int, **extra: Any):
    """`count` items through `crm-seed`; returns its answer (`ids`, `contact_ids`)."""
    answer = control(
        sandbox, portal, "crm-seed", entity_type_id=entity_type_id, count=count, **extra
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def items(rest, **params: Any) -> list[dict[str, Any]]:
    """One page of crm.item.list (asserting it succeeded)."""
    answer = rest("crm.item.list", params)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["items"]


def portal_state(sandbox: Any, portal: dict[str, Any]) -> dict[str, Any]:
    state = requests.get(f"{sandbox.bitrix_url}/_sandbox/state?log=0", timeout=30).json()
    return state["portals"][portal["member_id"]]
