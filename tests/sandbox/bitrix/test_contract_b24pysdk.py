"""Contract: the official b24pysdk (unpatched, from PyPI) against the sandbox portal and OAuth server.

b24pysdk only speaks https and refreshes tokens at the fixed https://oauth.bitrix24.tech, so the
sandbox sits behind the `tls` fixture (a throw-away CA, verification on). Issue 19.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from b24pysdk import BitrixApp, BitrixToken, BitrixWebhook, Client
from b24pysdk.errors import (
    BitrixAPIBadRequest,
    BitrixAPIExpiredToken,
    BitrixAPINotFound,
)

from tests.sandbox.bitrix.test_telephony import _wav


def _domain(sandbox) -> str:
    return sandbox.bitrix_url.split("://", 1)[1]


def _token(sandbox, portal: dict[str, Any], *, refreshable: bool = True) -> BitrixToken:
    app = BitrixApp(client_id=portal["client_id"], client_secret=portal["client_secret"])
    return BitrixToken(
        domain=_domain(sandbox),
        auth_token=portal["access_token"],
        refresh_token=portal["refresh_token"] if refreshable else None,
        bitrix_app=app,
    )


@pytest.fixture
def token(sandbox, portal, tls) -> BitrixToken:
    return _token(sandbox, portal)


def test_simple_calls_go_over_https(token, tls, sandbox):
    me = token.call_method("user.current")
    lead_id = token.call_method("crm.lead.add", {"fields": {"TITLE": "Over TLS"}})["result"]
    lead = token.call_method("crm.lead.get", {"id": lead_id})

    assert me["result"]["ID"] == "1"
    assert lead["result"]["TITLE"] == "Over TLS"
    assert {"start", "finish", "operating", "operating_reset_at"} <= set(lead["time"])
    assert set(tls.connects) == {f"127.0.0.1:{sandbox.bitrix_url.rsplit(':', 1)[1]}"}


def test_call_list_fast_pages_120_leads_each_once(token, portal, seed_leads):
    """call_list_fast chains pages with percent-encoded `$result[N][49][ID]` filters (item 1)."""
    ids = seed_leads(portal, 120)

    rows = list(token.call_list_fast("crm.lead.list")["result"])

    assert sorted(int(row["ID"]) for row in rows) == ids


def test_call_list_pages_120_leads_each_once(token, portal, seed_leads):
    ids = seed_leads(portal, 120)

    rows = list(token.call_list("crm.lead.list")["result"])

    assert sorted(int(row["ID"]) for row in rows) == ids


def test_call_batches_of_60_with_result_references(token):
    """60 commands in two requests; each `get` reads the `add` before it through `$result`."""
    methods: dict[str, tuple[str, dict[str, Any]]] = {}
    for i in range(30):
        methods[f"add{i}"] = ("crm.lead.add", {"fields": {"TITLE": f"Batch {i}"}})
        methods[f"get{i}"] = ("crm.lead.get", {"id": f"$result[add{i}]"})

    result = token.call_batches(methods)["result"]

    assert not result["result_error"]
    gets = [result["result"][f"get{i}"] for i in range(30)]
    assert [lead["TITLE"] for lead in gets] == [f"Batch {i}" for i in range(30)]
    assert [int(lead["ID"]) for lead in gets] == [result["result"][f"add{i}"] for i in range(30)]


def test_150_sequential_calls_ride_the_bucket_with_the_sdks_retries(sandbox, tls, http):
    """b24pysdk's only throttle is retrying 503 (after 1 s, +1 s each): it waits for the drain.

    The bucket starts full (another client used it) and drains 20/s instead of 2/s, so the
    test takes seconds, not a minute; burst and accounting are the portal's own.
    """
    portal = http.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={"drain": 20}).json()
    auth = {"auth": portal["access_token"]}
    prefill = [http.get(f"{portal['client_endpoint']}user.current", params=auth) for _ in range(55)]
    token = _token(sandbox, portal)
    started = time.monotonic()

    results = [token.call_method("profile")["result"]["ID"] for _ in range(150)]

    elapsed = time.monotonic() - started
    log = http.get(f"{sandbox.bitrix_url}/_sandbox/state", params={"log": 1000}).json()["log"]
    statuses = [entry["status"] for entry in log if entry["path"] == "/rest/profile.json"]
    assert [r.status_code for r in prefill].count(503) >= 1  # the bucket was full
    assert results == ["1"] * 150
    assert statuses.count(200) == 150
    assert statuses.count(503) >= 1  # the SDK met the bucket and retried
    assert elapsed < 30


def test_typed_errors_unknown_method_bad_parameter_expired_token(sandbox, portal, tls, http):
    token = _token(sandbox, portal, refreshable=False)

    with pytest.raises(BitrixAPINotFound) as unknown:
        token.call_method("crm.nothing.here")
    with pytest.raises(BitrixAPIBadRequest) as missing:
        token.call_method("crm.lead.get", {"id": 999})
    with pytest.raises(BitrixAPIBadRequest) as invalid:
        token.call_method("crm.lead.get", {"id": 0})
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")
    with pytest.raises(BitrixAPIExpiredToken):
        token.call_method("profile")

    assert unknown.value.json_response["error"] == "ERROR_METHOD_NOT_FOUND"
    # Real portals answer a missing record with an empty code (issue 19, item 2).
    assert not isinstance(missing.value, BitrixAPINotFound)
    assert missing.value.json_response == {"error": "", "error_description": "Not found"}
    assert invalid.value.json_response["error_description"] == "ID is not defined or invalid."


def test_expired_token_is_refreshed_by_the_sdk_at_the_oauth_server(
    sandbox, portal, token, tls, http
):
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")

    me = token.call_method("profile")

    assert me["result"]["ID"] == "1"
    assert token.auth_token != portal["access_token"]
    assert token.refresh_token != portal["refresh_token"]
    assert "oauth.bitrix24.tech:443" in tls.connects
    # The refresh token it used is spent: the SDK must keep the new pair (single-use, §1.5).
    again = http.get(
        f"{sandbox.oauth_url}/oauth/token/",
        params={
            "grant_type": "refresh_token",
            "client_id": portal["client_id"],
            "client_secret": portal["client_secret"],
            "refresh_token": portal["refresh_token"],
        },
    )
    assert again.json()["error"] == "invalid_grant"


def test_get_app_info_parses_the_oauth_servers_answer(token, portal):
    """b24pysdk's typed app.info needs client_id, expires, user_id, member_type (item 4)."""
    info = token.get_app_info()

    assert info.result.client_id == portal["client_id"]
    assert info.result.user_id == 1
    assert info.result.install.member_id == portal["member_id"]
    assert info.result.install.member_type
    assert info.result.expires.timestamp() > time.time()
    assert info.time.duration >= 0


def test_register_finish_attach_record_through_the_client(sandbox, portal, token):
    client = Client(token)
    telephony = client.telephony.external_call

    registered = telephony.register(
        "+380501112233", 2, user_id=1, crm_create=1, external_call_id="ext-1"
    ).result
    finished = telephony.finish(
        registered["CALL_ID"], user_id=1, duration=42, status_code="200"
    ).result
    attached = telephony.attach_record(
        registered["CALL_ID"], filename="call.wav", file_content=_wav()
    ).result

    assert registered["CRM_CREATED_LEAD"]
    assert finished["CALL_ID"] == registered["CALL_ID"]
    assert finished["CALL_DURATION"] == 42
    assert attached["FILE_ID"]


def test_inbound_webhook_through_bitrix_webhook(sandbox, portal, tls, http):
    """The SDK's webhook mode: https://<portal>/rest/<user>/<code>/<method>.json (item 7)."""
    hook = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/webhook",
        json={"user_id": 2},
    ).json()
    webhook = BitrixWebhook(domain=_domain(sandbox), webhook_token=f"2/{hook['code']}")
    wrong = BitrixWebhook(domain=_domain(sandbox), webhook_token="1/" + hook["code"])

    me = webhook.call_method("user.current")

    assert me["result"]["ID"] == "2"
    with pytest.raises(Exception) as refused:
        wrong.call_method("user.current")
    assert refused.value.json_response["error"] == "NO_AUTH_FOUND"
