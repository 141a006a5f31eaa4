"""Iframe entries (AUTH_ID), page tokens, framing headers."""

from __future__ import annotations

import pytest

from bitrixapp import auth
from bitrixapp.models import Portal

# Fixtures of the Bitrix24-side tests, scoped to this module (not to tests/bitrixapp as a whole).
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    REST,
    _bitrix_settings,
    fake_user,
    portal,
    rsps,
    sent,
    user_token,
)

pytestmark = pytest.mark.django_db(transaction=True)


def fake_profile(rsps, *, user_id="2", admin=False):
    fake_user(rsps, user_id=user_id, admin=admin)


def entry(client, portal, path="/bitrix/app/", auth_id=None, **extra):
    auth_id = auth_id or user_token(portal)
    return client.post(
        f"{path}?DOMAIN=acme.bitrix24.com&PROTOCOL=1&LANG=en&APP_SID=s",
        {"AUTH_ID": auth_id, "member_id": portal.member_id, "PLACEMENT": "DEFAULT", **extra},
    )


def test_page_token_round_trip(portal):
    token = auth.page_token_issue(portal, 5, True)
    identity = auth.page_token_verify(token)
    assert (identity.portal_id, identity.user_id, identity.is_admin) == (portal.pk, 5, True)


def test_tampered_page_token_is_refused(portal):
    token = auth.page_token_issue(portal, 5, False)
    with pytest.raises(auth.AuthenticationFailed):
        auth.page_token_verify(token[:-2] + "xx")


def test_expired_page_token_is_refused(portal, settings):
    token = auth.page_token_issue(portal, 5, False)
    settings.BITRIX24_PAGE_TOKEN_MAX_AGE_S = -1
    with pytest.raises(auth.AuthenticationFailed):
        auth.page_token_verify(token)


def test_page_token_of_an_uninstalled_portal_is_refused(portal):
    token = auth.page_token_issue(portal, 5, False)
    Portal.objects.filter(pk=portal.pk).update(status=Portal.Status.UNINSTALLED)
    with pytest.raises(auth.AuthenticationFailed):
        auth.page_token_verify(token)


def test_app_page_entry_validates_auth_id_and_allows_only_that_portal_to_frame(
    client, portal, rsps
):
    # given
    fake_profile(rsps)
    # when
    response = entry(client, portal)
    # then
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert csp.startswith("frame-ancestors 'self' https://acme.bitrix24.com; script-src 'self'")
    assert "X-Frame-Options" not in response
    assert rsps.calls[0].request.url == REST + "batch"
    assert b'name="app-token"' in response.content


def test_positive_auth_check_is_cached_briefly(client, portal, rsps):
    fake_profile(rsps)
    token = user_token(portal)
    entry(client, portal, auth_id=token)
    entry(client, portal, auth_id=token)
    assert len(rsps.calls) == 2  # the portal's batch and the OAuth server's app.info, once


def test_entry_with_a_rejected_auth_id_is_401(client, portal, rsps):
    rsps.post(REST + "batch", json={"error": "invalid_token", "error_description": ""}, status=401)
    response = entry(client, portal, auth_id="stolen")
    assert response.status_code == 401


def test_entry_for_an_unknown_portal_is_401_without_calls(client, portal, rsps):
    portal.member_id = "0" * 32
    assert entry(client, portal).status_code == 401
    assert len(rsps.calls) == 0


def test_placement_entry_reads_placement_options(client, portal, rsps):
    fake_profile(rsps)
    response = entry(
        client,
        portal,
        path="/bitrix/placement/",
        PLACEMENT="CALL_CARD",
        PLACEMENT_OPTIONS='{"CALL_ID":"c1"}',
    )
    assert response.status_code == 200
    assert b'data-placement="CALL_CARD"' in response.content


def test_other_pages_are_not_framable(client):
    response = client.get("/healthz")
    assert response["X-Frame-Options"] == "DENY"


def test_page_token_required_refuses_missing_and_bad_tokens(client):
    assert client.get("/bitrix/install/status/").status_code == 401
    assert client.get("/bitrix/install/status/", HTTP_X_APP_TOKEN="nope").status_code == 401


def test_page_token_required_admin_only_refuses_non_admins(rf, portal):
    @auth.page_token_required(admin=True)
    def view(request):
        from django.http import HttpResponse

        return HttpResponse("ok")

    non_admin = rf.get("/", HTTP_X_APP_TOKEN=auth.page_token_issue(portal, 2, False))
    admin = rf.get("/", HTTP_X_APP_TOKEN=auth.page_token_issue(portal, 1, True))
    assert view(non_admin).status_code == 403
    assert view(admin).status_code == 200


def test_event_authenticate_refuses_empty_stored_token(portal):
    Portal.objects.filter(pk=portal.pk).update(application_token="")
    with pytest.raises(auth.AuthenticationFailed):
        auth.event_authenticate(auth={"member_id": portal.member_id, "application_token": ""})
