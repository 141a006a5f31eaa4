"""Contract: inbound webhook URLs `/rest/<user>/<code>/<method>` with bitrix24-rest (issue 19, 7).

bitrix24-rest (unpatched, from PyPI) takes only a webhook URL and GETs `<url>/<method>.json`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bitrix24 import Bitrix24, BitrixError


def _webhook(sandbox, http, portal: dict[str, Any], user_id: int) -> dict[str, Any]:
    response = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/webhook",
        json={"user_id": user_id},
    )
    assert response.status_code == 201
    return response.json()


def _call(url: str, method: str, params: dict[str, Any] | None = None) -> Any:
    async def run() -> Any:
        return await Bitrix24(url).callMethod(method, params or {})

    return asyncio.run(run())


def test_webhook_calls_run_as_its_user_and_page_through_lists(sandbox, http, portal, seed_leads):
    ids = seed_leads(portal, 120)
    hook = _webhook(sandbox, http, portal, 2)

    me = _call(hook["url"], "user.current")
    leads = _call(hook["url"], "crm.lead.list")

    assert hook["url"] == f"{sandbox.bitrix_url}/rest/2/{hook['code']}/"
    assert me["ID"] == "2"
    assert sorted(int(lead["ID"]) for lead in leads) == ids


def test_webhook_with_a_wrong_code_or_user_is_refused(sandbox, http, portal):
    hook = _webhook(sandbox, http, portal, 2)

    with pytest.raises(BitrixError):
        _call(f"{sandbox.bitrix_url}/rest/2/not-the-code/", "user.current")
    as_other_user = http.get(f"{sandbox.bitrix_url}/rest/1/{hook['code']}/user.current.json")

    assert as_other_user.status_code == 401
    assert as_other_user.json()["error"] == "NO_AUTH_FOUND"


def test_webhook_control_refuses_an_unknown_user(sandbox, http, portal):
    response = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/webhook",
        json={"user_id": 99},
    )

    assert response.status_code == 400
