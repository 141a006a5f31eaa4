"""Contract: fast_bitrix24 (unpatched, from PyPI) against the sandbox portal over plain http.

It takes any base URL ending in /rest/ and an async `token_func` for OAuth apps, so it needs no
TLS. Each test runs the library's async client under `asyncio.run`. Issue 19.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from fast_bitrix24 import BitrixAsync
from fast_bitrix24.server_response import ErrorInServerResponseException


def _client(portal: dict[str, Any], tokens: list[str] | None = None, **options: Any) -> BitrixAsync:
    """A client whose token_func hands out `tokens` in turn (the portal's own token first)."""
    queue = list(tokens or [portal["access_token"]])

    async def token_func() -> str:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return BitrixAsync(portal["client_endpoint"], token_func=token_func, verbose=False, **options)


def test_simple_calls(portal):
    """`raw=True` sends one plain request and returns the whole envelope."""
    bx = _client(portal)

    async def scenario() -> tuple[Any, Any]:
        added = await bx.call("crm.lead.add", {"fields": {"TITLE": "Fast"}}, raw=True)
        lead = await bx.call("crm.lead.get", {"ID": added["result"]}, raw=True)
        return added, lead

    added, lead = asyncio.run(scenario())

    assert int(lead["result"]["ID"]) == added["result"]
    assert lead["result"]["TITLE"] == "Fast"
    assert {"operating", "operating_reset_at"} <= set(lead["time"])


def test_get_all_pages_120_leads_each_once(portal, seed_leads):
    ids = seed_leads(portal, 120)

    rows = asyncio.run(_client(portal).get_all("crm.lead.list"))

    assert sorted(int(row["ID"]) for row in rows) == ids


def test_call_of_60_items_goes_in_batches_with_every_result_once(portal, seed_leads):
    ids = seed_leads(portal, 60)

    leads = asyncio.run(_client(portal).call("crm.lead.get", [{"ID": i} for i in ids]))

    # The library returns results in the order its batches were answered (user_request.py says
    # so: the keyed form tells which is which), so only the set and the count are its contract.
    assert sorted(int(lead["ID"]) for lead in leads) == ids


def test_call_batch_with_result_references(portal):
    """50 commands: each get reads the add before it through `$result[...]`."""
    cmd: dict[str, str] = {}
    for i in range(25):
        cmd[f"add{i}"] = f"crm.lead.add?fields[TITLE]=Ref%20{i}"
        cmd[f"get{i}"] = f"crm.lead.get?ID=$result[add{i}]"

    result = asyncio.run(_client(portal).call_batch({"halt": 0, "cmd": cmd}))

    assert [result[f"get{i}"]["TITLE"] for i in range(25)] == [f"Ref {i}" for i in range(25)]


def test_call_batch_beyond_50_commands_runs_50_and_raises_for_the_rest(portal, rest):
    """call_batch sends one request whatever its size: 60 commands with `$result` references
    run the first 50 (25 add/get pairs) and the library raises for the 10 beyond (§2.5)."""
    cmd: dict[str, str] = {}
    for i in range(30):
        cmd[f"add{i}"] = f"crm.lead.add?fields[TITLE]=Ref%20{i}"
        cmd[f"get{i}"] = f"crm.lead.get?ID=$result[add{i}]"

    with pytest.raises(ErrorInServerResponseException) as beyond:
        asyncio.run(_client(portal).call_batch({"halt": 0, "cmd": cmd}))

    errors = beyond.value.args[0]
    assert list(errors) == list(cmd)[50:]
    assert {e["error"] for e in errors.values()} == {"ERROR_BATCH_LENGTH_EXCEEDED"}
    listed = rest("crm.lead.list", {"select": ["TITLE"]}).json()
    assert [lead["TITLE"] for lead in listed["result"]] == [f"Ref {i}" for i in range(25)]


def test_batch_operating_feeds_the_librarys_velocity_throttler(portal):
    """fast_bitrix24 records a batch's outer `time.operating` per method (item 5)."""
    bx = _client(portal)

    asyncio.run(bx.call("user.current", [{} for _ in range(3)]))

    history = bx.srh.method_throttlers["batch"]._request_history
    assert len(history) == 1
    assert history[0].duration > 0


def test_150_calls_through_batching_call_under_a_full_bucket(sandbox, portal, http):
    """150 calls go as 3 batches; the 50/2 bucket is already full (another client used it).

    The library's own throttling (batching, then retrying 503 with its growing back-off) waits
    for the drain; every call succeeds. (Past the burst without batching, fast_bitrix24 1.8.14
    gives up after ten 503s in a row: its bucket lets concurrent waiters fire together.)
    """
    auth = {"auth": portal["access_token"]}
    prefill = [http.get(f"{portal['client_endpoint']}profile", params=auth) for _ in range(52)]
    bx = _client(portal)

    results = asyncio.run(bx.call("profile", [{} for _ in range(150)]))

    log = http.get(f"{sandbox.bitrix_url}/_sandbox/state", params={"log": 500})
    batches = [e["status"] for e in log.json()["log"] if e["path"].endswith("/rest/batch")]
    assert [r.status_code for r in prefill].count(503) == 2  # the bucket was full
    assert [r["ID"] for r in results] == ["1"] * 150
    assert batches.count(200) == 3
    assert batches.count(503) >= 1  # it met the bucket and waited for the drain


class _AskedAgain(Exception):
    """Raised by a token_func asked for a second token."""


def test_typed_errors_unknown_method_bad_parameter_expired_token(sandbox, portal, http):
    no_token = BitrixAsync(portal["client_endpoint"], verbose=False)
    asked: list[int] = []

    async def stale_token_func() -> str:
        asked.append(1)
        if len(asked) > 1:
            raise _AskedAgain
        return portal["access_token"]

    with pytest.raises(aiohttp.ClientResponseError) as unknown:
        asyncio.run(_client(portal).call("crm.nothing.here", {"ID": 1}, raw=True))
    with pytest.raises(ErrorInServerResponseException) as bad:
        asyncio.run(_client(portal).call("crm.lead.get", [{"ID": 0}, {"ID": 999}]))
    with pytest.raises(ErrorInServerResponseException) as bad_list:
        asyncio.run(
            _client(portal).call_batch({"cmd": ["crm.lead.get?ID=0", "crm.lead.get?ID=999"]})
        )
    with pytest.raises(aiohttp.ClientResponseError) as unauthorised:
        asyncio.run(no_token.call("profile", {}, raw=True))
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")
    # An expired token is a 401 the library turns into a request for a new token (its only
    # typing of it: TokenRejectedError, caught inside); the replacement is the next test.
    with pytest.raises(_AskedAgain):
        asyncio.run(
            BitrixAsync(portal["client_endpoint"], token_func=stale_token_func, verbose=False).call(
                "profile", {}, raw=True
            )
        )
    expired = http.get(
        f"{portal['client_endpoint']}profile", params={"auth": portal["access_token"]}
    ).json()

    assert unknown.value.status == 404
    # Empty codes, as real portals answer (item 2); with a list-form cmd whose every command
    # failed, result_error is a PHP list (item 3).
    expected = [
        {"error": "", "error_description": "ID is not defined or invalid."},
        {"error": "", "error_description": "Not found"},
    ]
    assert list(bad.value.args[0].values()) == expected
    assert bad_list.value.args[0] == expected
    assert unauthorised.value.status == 401
    assert len(asked) == 2
    assert expired["error"] == "expired_token"


def test_expired_token_is_replaced_through_token_func(sandbox, portal, http):
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")
    fresh = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/tokens", json={}
    ).json()["access_token"]
    bx = _client(portal, tokens=[portal["access_token"], fresh])

    me = asyncio.run(bx.call("profile", {}, raw=True))

    assert me["result"]["ID"] == "1"
    assert bx.srh.token == fresh


def test_register_finish_attach_record(portal):
    from tests.sandbox.bitrix.test_telephony import _wav

    bx = _client(portal)

    async def scenario() -> tuple[Any, Any, Any]:
        # One-item lists: call() then returns a tuple with that item's result.
        (registered,) = await bx.call(
            "telephony.externalcall.register",
            [{"USER_ID": 1, "PHONE_NUMBER": "+380501112233", "TYPE": 2, "CRM_CREATE": 1}],
        )
        call_id = registered["CALL_ID"]
        (finished,) = await bx.call(
            "telephony.externalcall.finish", [{"CALL_ID": call_id, "USER_ID": 1, "DURATION": 7}]
        )
        (attached,) = await bx.call(
            "telephony.externalcall.attachRecord",
            [{"CALL_ID": call_id, "FILENAME": "call.wav", "FILE_CONTENT": _wav()}],
        )
        return registered, finished, attached

    registered, finished, attached = asyncio.run(scenario())

    assert registered["CRM_CREATED_LEAD"]
    assert finished["CALL_DURATION"] == 7
    assert attached > 0  # {"FILE_ID": n}: the library unwraps one-key results to their value
