"""Fault injection: every kind is observable from a client, per method or '*', rate 0 clears."""

from __future__ import annotations

import time

import pytest
import requests


def _fault(http, base, **body):
    response = http.post(f"{base}/_sandbox/faults", json=body)
    assert response.status_code == 200, response.text
    return response


def _profile(portal, timeout=5.0):
    return requests.post(
        f"{portal['client_endpoint']}profile",
        json={"auth": portal["access_token"]},
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("500", 500, "INTERNAL_SERVER_ERROR"),
        ("503", 503, "QUERY_LIMIT_EXCEEDED"),
        ("expired_token", 401, "expired_token"),
    ],
)
def test_json_error_faults(sandbox, portal, http, kind, status, error):
    _fault(http, sandbox.bitrix_url, method="profile", kind=kind, rate=1, seed=1)

    response = _profile(portal)

    assert response.status_code == status
    assert response.json()["error"] == error


@pytest.mark.parametrize(("kind", "status"), [("502", 502), ("html", 200)])
def test_html_faults_are_not_json(sandbox, portal, http, kind, status):
    _fault(http, sandbox.bitrix_url, method="*", kind=kind, rate=1)

    response = _profile(portal)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize("kind", ["reset", "down"])
def test_connection_faults(sandbox, portal, http, kind):
    _fault(http, sandbox.bitrix_url, method="profile", kind=kind, rate=1)

    with pytest.raises(requests.ConnectionError):
        _profile(portal)


def test_timeout_fault(sandbox, portal, http):
    _fault(http, sandbox.bitrix_url, method="profile", kind="timeout", rate=1, seconds=1.5)

    with pytest.raises(requests.Timeout):
        _profile(portal, timeout=0.3)


def test_latency_fault(sandbox, portal, http):
    _fault(http, sandbox.bitrix_url, method="profile", kind="latency", rate=1, seconds=0.3)

    started = time.monotonic()
    response = _profile(portal)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_rate_zero_clears_and_other_methods_unaffected(sandbox, portal, http):
    _fault(http, sandbox.bitrix_url, method="profile", kind="500", rate=1)
    other = requests.post(
        f"{portal['client_endpoint']}user.current", json={"auth": portal["access_token"]}, timeout=5
    )
    _fault(http, sandbox.bitrix_url, method="profile", kind="500", rate=0)

    assert other.status_code == 200
    assert _profile(portal).status_code == 200


def test_seeded_partial_rate_is_reproducible(sandbox, portal, http):
    def run():
        _fault(http, sandbox.bitrix_url, method="app.info", kind="500", rate=0.5, seed=7)
        return [
            requests.get(
                f"{portal['client_endpoint']}app.info",
                params={"auth": portal["access_token"]},
                timeout=5,
            ).status_code
            for _ in range(10)
        ]

    first, second = run(), run()

    assert first == second
    assert set(first) == {200, 500}


def test_unitalk_and_oauth_faults(sandbox, portal, http):
    _fault(http, sandbox.unitalk_url, method="users/list", kind="500", rate=1)
    _fault(http, sandbox.oauth_url, method="*", kind="503", rate=1)

    unitalk = http.post(
        f"{sandbox.unitalk_url}/api/users/list", json={}, headers={"Authorization": "SandboxKey01"}
    )
    oauth = http.get(portal["oauth_url"], params={"grant_type": "refresh_token"})

    assert unitalk.status_code == 500
    assert unitalk.json() == {"status": "Error", "message": "Internal error"}
    assert oauth.status_code == 503


def test_bad_fault_requests_are_rejected(sandbox, http):
    response = http.post(f"{sandbox.bitrix_url}/_sandbox/faults", json={"kind": "meteor"})
    garbage = http.post(f"{sandbox.bitrix_url}/_sandbox/faults", data=b"not json")

    assert response.status_code == 400
    assert garbage.status_code == 400


def test_reset_clears_state_and_faults(sandbox, portal, http):
    _fault(http, sandbox.bitrix_url, method="*", kind="500", rate=1)

    http.post(f"{sandbox.bitrix_url}/_sandbox/reset")

    state = http.get(f"{sandbox.bitrix_url}/_sandbox/state").json()
    assert state["portals"] == {}
    assert _profile(portal).json()["error"] == "invalid_token"
    users = http.post(
        f"{sandbox.unitalk_url}/api/users/list", json={}, headers={"Authorization": "SandboxKey01"}
    )
    assert "users" in users.json()


def test_request_log_records_status_codes(sandbox, portal, http):
    _profile(portal)

    log = http.get(f"{sandbox.bitrix_url}/_sandbox/state").json()["log"]

    path = f"/portal/{portal['member_id']}/rest/profile"
    assert {"server": "bitrix", "path": path, "status": 200}.items() <= log[-1].items()
