import pytest
import requests
import responses

from integration.core import http
from integration.core.errors import TransientError


@responses.activate
def test_redirects_are_returned_not_followed():
    responses.get(
        "https://old.example/rest/x", status=302, headers={"Location": "https://new.example/rest/x"}
    )
    response = http.request("GET", "https://old.example/rest/x", service="test")
    assert response.status_code == 302
    assert len(responses.calls) == 1


@responses.activate
def test_timeouts_become_transient_errors():
    responses.get("https://slow.example/", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransientError, match="timed out"):
        http.request("GET", "https://slow.example/", service="test")


@responses.activate
def test_connection_resets_become_transient_errors():
    responses.get("https://reset.example/", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(TransientError, match="connection failed"):
        http.request("GET", "https://reset.example/", service="test")


@responses.activate
def test_requests_carry_our_user_agent_and_a_timeout(settings):
    responses.get("https://ua.example/", json={})
    http.request("GET", "https://ua.example/", service="test")
    sent = responses.calls[0].request
    assert sent.headers["User-Agent"] == settings.HTTP_USER_AGENT
    assert sent.req_kwargs["timeout"] == (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT)
    assert sent.req_kwargs["verify"] is True
