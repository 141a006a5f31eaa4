"""OAuth server: single-use refresh tokens, credentials, token checks (docs/bitrix24.md §1.5)."""

from __future__ import annotations


def _refresh(http, portal, token, **overrides):
    params = {
        "grant_type": "refresh_token",
        "client_id": portal["client_id"],
        "client_secret": portal["client_secret"],
        "refresh_token": token,
        **overrides,
    }
    return http.get(portal["oauth_url"], params=params)


def test_refresh_rotates_and_used_refresh_token_is_invalid_grant(portal, http):
    first = _refresh(http, portal, portal["refresh_token"])
    reused = _refresh(http, portal, portal["refresh_token"])

    assert first.status_code == 200
    body = first.json()
    assert body["member_id"] == portal["member_id"]
    assert body["client_endpoint"] == portal["client_endpoint"]
    assert body["expires_in"] == 3600
    assert {"access_token", "refresh_token", "expires", "user_id", "server_endpoint"} <= set(body)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_old_access_token_dies_after_refresh(portal, http):
    new = _refresh(http, portal, portal["refresh_token"]).json()

    old = http.post(f"{portal['client_endpoint']}profile", json={"auth": portal["access_token"]})
    fresh = http.post(f"{portal['client_endpoint']}profile", json={"auth": new["access_token"]})

    assert (old.status_code, old.json()["error"]) == (401, "invalid_token")
    assert fresh.status_code == 200


def test_wrong_client_secret_is_invalid_client(portal, http):
    response = _refresh(http, portal, portal["refresh_token"], client_secret="wrong")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_authorization_code_grant(sandbox, portal, http):
    code = http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/code").json()

    response = http.post(
        portal["oauth_url"],
        data={
            "grant_type": "authorization_code",
            "client_id": portal["client_id"],
            "client_secret": portal["client_secret"],
            "code": code["code"],
        },
    )
    again = http.post(
        portal["oauth_url"],
        data={
            "grant_type": "authorization_code",
            "client_id": portal["client_id"],
            "client_secret": portal["client_secret"],
            "code": code["code"],
        },
    )

    assert response.status_code == 200
    assert response.json()["member_id"] == portal["member_id"]
    assert again.json()["error"] == "invalid_grant"


def test_app_info_validates_tokens(sandbox, portal, http):
    url = f"{sandbox.oauth_url}/rest/app.info"

    good = http.get(url, params={"auth": portal["access_token"]})
    bad = http.get(url, params={"auth": "garbage"})
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")
    expired = http.get(url, params={"auth": portal["access_token"]})

    assert good.json()["result"]["install"]["member_id"] == portal["member_id"]
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_token")
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")


def test_malformed_token_request_gets_oauth_error(portal, http):
    response = http.post(
        portal["oauth_url"], data=b"{{{", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
