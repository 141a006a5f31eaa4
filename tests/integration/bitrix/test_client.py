"""REST client against faked HTTP: envelopes, error classes, limits, refresh, redirects."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.utils import timezone

from bitrixapp.models import Portal
from integration.bitrix import batch as bx_batch
from integration.bitrix import client, errors
from integration.core import inputs, ratelimit
from integration.core.errors import (
    AuthExpiredError,
    CredentialsInvalidError,
    PermanentError,
    PortalStateError,
    RateLimitedError,
    TransientError,
)
from integration.models import Notification
from tests.integration.bitrix.fixtures import OAUTH, REST, ok, query, rest_body

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = f"{OAUTH}/oauth/token/"


def test_call_returns_result_and_sends_token_as_auth(portal, rsps):
    # given
    rsps.post(REST + "crm.lead.get", json=ok({"ID": "7"}))
    # when
    result = client.call(portal, "crm.lead.get", {"id": 7})
    # then
    assert result == {"ID": "7"}
    assert rest_body(rsps.calls[0]) == {"id": 7, "auth": "access-1"}


def test_envelope_carries_next_total_and_time(portal, rsps):
    rsps.post(REST + "crm.lead.list", json=ok([{"ID": "1"}], next=50, total=120))
    envelope = client.call_envelope(portal, "crm.lead.list")
    assert (envelope.next, envelope.total, envelope.time["duration"]) == (50, 120, 0.1)


def test_expired_token_refreshes_once_and_retries_once(portal, rsps):
    # given: the stored token has expired on the portal
    rsps.post(
        REST + "user.current",
        json={
            "error": "expired_token",
            "error_description": "The access token provided has expired",
        },
        status=401,
    )
    rsps.get(
        TOKEN_URL,
        json={"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 3600},
    )
    rsps.post(REST + "user.current", json=ok({"ID": "1"}))
    # when
    result = client.call(portal, "user.current")
    # then: one refresh with our credentials, the rotated pair stored, the call retried with it
    assert result == {"ID": "1"}
    refreshes = [c for c in rsps.calls if c.request.url.startswith(TOKEN_URL)]
    assert len(refreshes) == 1
    assert query(refreshes[0]) == {
        "grant_type": "refresh_token",
        "client_id": "app.test.123",
        "client_secret": "s3cret-client",
        "refresh_token": "refresh-1",
    }
    assert rest_body(rsps.calls[-1])["auth"] == "access-2"
    stored = Portal.objects.get(pk=portal.pk)
    assert (stored.access_token, stored.refresh_token) == ("access-2", "refresh-2")


def test_invalid_token_after_another_worker_refreshed_uses_the_stored_pair(portal, rsps):
    # given: another process already rotated the pair; we still hold the old token
    fresh = Portal.objects.get(pk=portal.pk)
    fresh.access_token, fresh.refresh_token = "access-9", "refresh-9"
    fresh.save()
    rsps.post(
        REST + "profile", json={"error": "invalid_token", "error_description": ""}, status=401
    )
    rsps.post(REST + "profile", json=ok({"ID": "1"}))
    # when
    client.call(portal, "profile")
    # then: no refresh request, retried with the stored token
    assert not [c for c in rsps.calls if c.request.url.startswith(TOKEN_URL)]
    assert rest_body(rsps.calls[-1])["auth"] == "access-9"


def test_token_error_after_the_retry_is_raised_not_looped(portal, rsps):
    rsps.post(REST + "profile", json={"error": "expired_token"}, status=401)
    rsps.get(
        TOKEN_URL, json={"access_token": "access-2", "refresh_token": "r2", "expires_in": 3600}
    )
    with pytest.raises(AuthExpiredError):
        client.call(portal, "profile")
    assert len([c for c in rsps.calls if c.request.url.startswith(REST)]) == 2


def test_refused_refresh_suspends_portal_notifies_admins_and_pauses(portal, rsps):
    # given
    rsps.post(REST + "profile", json={"error": "expired_token"}, status=401)
    rsps.get(TOKEN_URL, json={"error": "invalid_grant", "error_description": "x"}, status=400)
    # when
    with pytest.raises(CredentialsInvalidError) as caught:
        client.call(portal, "profile")
    # then
    assert caught.value.pause_key == "bitrix"
    stored = Portal.objects.get(pk=portal.pk)
    assert stored.status == Portal.Status.SUSPENDED
    assert "invalid_grant" in stored.status_reason
    note = Notification.objects.get(portal=portal)
    assert note.kind == "bitrix.auth"


def test_payment_required_on_refresh_is_a_portal_state_pause(portal, rsps):
    rsps.post(REST + "profile", json={"error": "expired_token"}, status=401)
    rsps.get(
        TOKEN_URL,
        json={"error": "PAYMENT_REQUIRED", "error_description": "Payment required"},
        status=401,
    )
    with pytest.raises(PortalStateError):
        client.call(portal, "profile")
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.SUSPENDED


def test_suspended_portal_raises_without_a_request(portal, rsps):
    Portal.objects.filter(pk=portal.pk).update(status=Portal.Status.SUSPENDED)
    portal.refresh_from_db()
    with pytest.raises(PortalStateError):
        client.call(portal, "profile")
    assert len(rsps.calls) == 0


def test_token_about_to_expire_is_refreshed_before_the_call(portal, rsps):
    # given: the stored token expires within the refresh margin
    portal.access_expires_at = timezone.now() + timedelta(seconds=5)
    portal.save(update_fields=["access_expires_at"])
    rsps.get(
        TOKEN_URL, json={"access_token": "access-2", "refresh_token": "r2", "expires_in": 3600}
    )
    rsps.post(REST + "profile", json=ok({"ID": "1"}))
    client.call(portal, "profile")
    assert rsps.calls[0].request.url.startswith(TOKEN_URL)
    assert rest_body(rsps.calls[1])["auth"] == "access-2"


@pytest.mark.parametrize("expires_in", ['"²"', '"' + "9" * 5000 + '"', "1e400"])
def test_a_refresh_answer_with_an_odd_lifetime_keeps_the_new_pair_for_an_hour(
    portal, rsps, expires_in
):
    # The one integer parser (integration/core/inputs.py): float() raised, and the single-use
    # refresh token's new pair was lost with the job.
    portal.access_expires_at = timezone.now() + timedelta(seconds=5)
    portal.save(update_fields=["access_expires_at"])
    body = f'{{"access_token": "access-2", "refresh_token": "r2", "expires_in": {expires_in}}}'
    rsps.get(TOKEN_URL, body=body, content_type="application/json")
    rsps.post(REST + "profile", json=ok({"ID": "1"}))

    client.call(portal, "profile")

    portal.refresh_from_db()
    assert (portal.access_token, portal.refresh_token) == ("access-2", "r2")
    left = (portal.access_expires_at - timezone.now()).total_seconds()
    assert 3500 < left <= 3600


def test_query_limit_exceeded_is_rate_limited(portal, rsps):
    rsps.post(
        REST + "crm.lead.add",
        json={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
        status=503,
    )
    with pytest.raises(RateLimitedError) as caught:
        client.call(portal, "crm.lead.add", {"fields": {}})
    assert caught.value.retry_after > 0


def test_after_query_limit_exceeded_every_process_waits_for_the_portals_bucket_to_drain(
    portal, rsps, settings
):
    # given a portal whose counter is full although ours is not (burst 50, drain 2 per second)
    rsps.post(
        REST + "profile",
        json={"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
        status=503,
    )
    with pytest.raises(RateLimitedError):
        client.call(portal, "profile")
    # when the next request comes, from any process (the bucket is shared)
    with pytest.raises(RateLimitedError) as caught:
        client.call(portal, "profile")
    # then it is not sent until the portal's counter is below what background may use again:
    # the plan's burst minus the safety and interactive slots, drained at our share of the rate
    assert len(rsps.calls) == 1
    interval = 1 / (portal.rate_drain * settings.BITRIX24_RATE_SAFETY_FACTOR)
    held = settings.BITRIX24_RATE_SAFETY_SLOTS + settings.RATE_INTERACTIVE_RESERVE_SLOTS
    assert held * interval < caught.value.retry_after <= (held + 1) * interval + 0.01


def test_operation_time_limit_parks_only_that_method(portal, rsps):
    # given: the portal reported when the method's oldest operating basket drops
    reset_at = time.time() + 30
    rsps.post(
        REST + "crm.activity.list",
        json=ok([], time={"operating": 1.0, "operating_reset_at": reset_at}),
    )
    client.call(portal, "crm.activity.list")
    rsps.post(
        REST + "crm.activity.list",
        json={"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked"},
        status=429,
    )
    with pytest.raises(RateLimitedError) as first:
        client.call(portal, "crm.activity.list")
    assert 25 < first.value.retry_after <= 31
    requests_so_far = len(rsps.calls)
    # when: the same method again, and another method
    with pytest.raises(RateLimitedError):
        client.call(portal, "crm.activity.list")
    rsps.post(REST + "crm.lead.get", json=ok({"ID": "1"}))
    started = time.monotonic()
    assert client.call(portal, "crm.lead.get", {"id": 1}) == {"ID": "1"}
    # then: the parked method sent nothing; the other went at once
    assert time.monotonic() - started < 1.0
    assert [c.request.url for c in rsps.calls[requests_so_far:]] == [REST + "crm.lead.get"]


def test_operating_near_limit_parks_method_before_a_429(portal, rsps, settings):
    settings.BITRIX24_OPERATING_LIMIT_S = 10
    rsps.post(
        REST + "crm.lead.list",
        json=ok([], time={"operating": 9.9, "operating_reset_at": time.time() + 20}),
    )
    client.call(portal, "crm.lead.list")
    assert ratelimit.parked_for(client.method_key(portal, "crm.lead.list")) > 15


def test_html_error_page_is_transient(portal, rsps):
    rsps.post(
        REST + "profile", body="<html>502 Bad Gateway</html>", status=502, content_type="text/html"
    )
    with pytest.raises(TransientError) as caught:
        client.call(portal, "profile")
    assert caught.value.code == errors.NOT_JSON


def test_html_429_parks_the_method(portal, rsps):
    rsps.post(
        REST + "crm.lead.list", body="<html>blocked</html>", status=429, content_type="text/html"
    )
    with pytest.raises(RateLimitedError):
        client.call(portal, "crm.lead.list")
    assert ratelimit.parked_for(client.method_key(portal, "crm.lead.list")) > 0


def test_error_class_follows_the_code_not_the_status(portal, rsps):
    # insufficient_scope comes as 401 from SRC and 403 per DOC: permanent either way
    rsps.post(REST + "crm.lead.get", json={"error": "insufficient_scope"}, status=401)
    with pytest.raises(PermanentError):
        client.call(portal, "crm.lead.get")


def test_empty_error_code_from_telephony_is_permanent_with_description(portal, rsps):
    rsps.post(
        REST + "telephony.externalCall.finish",
        json={
            "error": "",
            "error_description": "Call is not found (call should be registered prior to finishing",
        },
        status=400,
    )
    with pytest.raises(PermanentError) as caught:
        client.call(portal, "telephony.externalCall.finish", {"CALL_ID": "x"})
    assert "Call is not found" in str(caught.value)


def test_unknown_code_is_classified_by_status(portal, rsps):
    rsps.post(REST + "a.b", json={"error": "SOMETHING_NEW"}, status=500)
    with pytest.raises(TransientError):
        client.call(portal, "a.b")
    rsps.post(REST + "c.d", json={"error": "SOMETHING_ELSE"}, status=400)
    with pytest.raises(PermanentError):
        client.call(portal, "c.d")


def test_domain_change_redirect_is_followed_once_and_stored(portal, rsps):
    rsps.post(
        REST + "profile",
        status=302,
        headers={"Location": "https://acme-new.bitrix24.com/rest/profile"},
    )
    rsps.post("https://acme-new.bitrix24.com/rest/profile", json=ok({"ID": "1"}))
    assert client.call(portal, "profile") == {"ID": "1"}
    stored = Portal.objects.get(pk=portal.pk)
    assert stored.client_endpoint == "https://acme-new.bitrix24.com/rest/"
    assert stored.domain == "acme-new.bitrix24.com"


def test_redirect_to_a_foreign_host_is_not_followed(portal, rsps):
    rsps.post(
        REST + "profile", status=302, headers={"Location": "https://evil.example.com/rest/profile"}
    )
    with pytest.raises(TransientError):
        client.call(portal, "profile")
    assert len(rsps.calls) == 1
    assert Portal.objects.get(pk=portal.pk).client_endpoint == REST


def test_batch_splits_into_fifty_and_keeps_errors_per_command(portal, rsps):
    # given: 120 commands, command 7 fails
    def answer(request):
        import json as _json

        cmd = _json.loads(request.body)["cmd"]
        result = {k: {"ok": k} for k in cmd if k != "7"}
        errs = {"7": {"error": "ERROR_ARGUMENT", "error_description": "bad"}} if "7" in cmd else []
        return (
            200,
            {},
            _json.dumps(
                ok({"result": result, "result_error": errs, "result_total": [], "result_next": []})
            ),
        )

    rsps.add_callback(
        responses.POST, REST + "batch", callback=answer, content_type="application/json"
    )
    commands = [("crm.lead.get", {"id": i}) for i in range(120)]
    # when
    out = bx_batch.batch(portal, commands)
    # then
    assert len(rsps.calls) == 3
    assert [len(rest_body(c)["cmd"]) for c in rsps.calls] == [50, 50, 20]
    assert rest_body(rsps.calls[0])["cmd"]["3"] == "crm.lead.get?id=3"
    assert len(out.results) == 119
    assert out.errors == {"7": {"error": "ERROR_ARGUMENT", "error_description": "bad"}}


def test_batch_with_halt_stops_after_a_failing_chunk(portal, rsps):
    rsps.post(REST + "batch", json=ok({"result": [], "result_error": {"0": {"error": "X"}}}))
    out = bx_batch.batch(portal, [("a.b", None)] * 60, halt=True)
    assert len(rsps.calls) == 1
    assert rest_body(rsps.calls[0])["halt"] == 1
    assert "0" in out.errors


def test_batch_params_use_php_bracket_encoding():
    assert (
        bx_batch.command_string(
            "crm.lead.add", {"fields": {"PHONE": [{"VALUE": "+1 2"}], "OPENED": True}}
        )
        == "crm.lead.add?fields[PHONE][0][VALUE]=%2B1%202&fields[OPENED]=1"
    )


def test_list_all_offset_paging_follows_next(portal, rsps):
    rsps.post(
        REST + "crm.lead.list", json=ok([{"ID": str(i)} for i in range(50)], next=50, total=70)
    )
    rsps.post(REST + "crm.lead.list", json=ok([{"ID": str(i)} for i in range(50, 70)], total=70))
    rows = client.list_all(portal, "crm.lead.list", {"select": ["ID"]})
    assert len(rows) == 70
    assert rest_body(rsps.calls[1])["start"] == 50


def test_list_all_fast_mode_pages_by_id_without_count(portal, rsps):
    rsps.post(REST + "crm.lead.list", json=ok([{"ID": str(i)} for i in range(1, 51)]))
    rsps.post(REST + "crm.lead.list", json=ok([{"ID": "51"}]))
    rows = client.list_all(portal, "crm.lead.list", {"filter": {"STATUS_ID": "NEW"}}, fast=True)
    assert len(rows) == 51
    second = rest_body(rsps.calls[1])
    assert second["start"] == -1
    assert second["order"] == {"ID": "ASC"}
    assert second["filter"] == {"STATUS_ID": "NEW", ">ID": "50"}


REFERENCE_CODES = [
    "expired_token",
    "invalid_token",
    "NO_AUTH_FOUND",
    "insufficient_scope",
    "user_access_error",
    "authorization_error",
    "APPLICATION_NOT_FOUND",
    "CONNECTION_ERROR",
    "ACCESS_DENIED",
    "WRONG_AUTH_TYPE",
    "INVALID_CREDENTIALS",
    "METHOD_CONFIRM_WAITING",
    "METHOD_CONFIRM_DENIED",
    "ERROR_METHOD_NOT_FOUND",
    "OPERATION_TIME_LIMIT",
    "QUERY_LIMIT_EXCEEDED",
    "OVERLOAD_LIMIT",
    "INVALID_REQUEST",
    "ERROR_BATCH_LENGTH_EXCEEDED",
    "ERROR_BATCH_METHOD_NOT_ALLOWED",
    "PORTAL_DELETED",
    "INTERNAL_SERVER_ERROR",
    "ERROR_UNEXPECTED_ANSWER",
    "ERROR_CORE",
    "ERROR_ARGUMENT",
    "ERROR_NOT_FOUND",
    "NOT_FOUND",
    "PAYMENT_REQUIRED",
    "WRONG_ENCODING",
    "",
    "oauth:invalid_grant",
    "oauth:invalid_client",
    "oauth:invalid_request",
    "oauth:PAYMENT_REQUIRED",
    "oauth:NOT_INSTALLED",
    "oauth:WRONG_CLIENT",
    "oauth:bad_verification_code",
]


def test_error_table_covers_every_code_of_the_reference():
    codes = {rule.code for rule in errors.ERROR_TABLE}
    assert not [c for c in REFERENCE_CODES if c not in codes]
    assert all(rule.meaning for rule in errors.ERROR_TABLE)


def test_paused_error_classes_carry_the_bitrix_pause_key():
    for rule in errors.ERROR_TABLE:
        if rule.code.startswith("oauth:") or not rule.code:
            continue
        error = errors.error_build(
            code=rule.code, description="d", status=rule.http_status, method="m"
        )
        assert type(error) is rule.error_class
        if hasattr(error, "pause_key"):
            assert error.pause_key == "bitrix"


def test_client_does_not_import_requests():
    source = (client.__file__, bx_batch.__file__)
    for path in source:
        text = Path(path).read_text()
        assert not re.search(r"^\s*(import|from)\s+requests", text, re.M)


def test_app_removed_answer_suspends_portal_and_tells_admins(portal, rsps):
    # given
    rsps.post(REST + "profile", json={"error": "APPLICATION_NOT_FOUND"}, status=401)
    # when
    with pytest.raises(PortalStateError) as caught:
        client.call(portal, "profile")
    # then: the job pauses under "bitrix", the portal says why, admins hear about it
    assert caught.value.pause_key == "bitrix"
    stored = Portal.objects.get(pk=portal.pk)
    assert stored.status == Portal.Status.SUSPENDED
    assert "APPLICATION_NOT_FOUND" in stored.status_reason
    assert Notification.objects.filter(portal=portal, kind="bitrix.auth").count() == 1


# Batch answers shaped like fast_bitrix24's recorded real ones (crm_get_batch_of_two_error,
# crm_get_batch_mix_success_and_errors, call_single_success): issue 19.
NOT_DEFINED = {"error": "", "error_description": "ID is not defined or invalid."}
NOT_FOUND_EMPTY = {"error": "", "error_description": "Not found"}


def test_batch_reads_result_error_as_a_php_list(portal, rsps):
    rsps.post(
        REST + "batch",
        json=ok(
            {
                "result": [],
                "result_error": [NOT_DEFINED, NOT_FOUND_EMPTY],
                "result_total": [],
                "result_next": [],
                "result_time": [],
            }
        ),
    )
    out = bx_batch.batch(portal, [("crm.lead.get", {"id": 0}), ("crm.lead.get", {"id": 9})])
    assert out.results == {}
    assert out.errors == {"0": NOT_DEFINED, "1": NOT_FOUND_EMPTY}


@pytest.mark.parametrize("total", ["²", "9" * 5000, "many"])
def test_a_batch_total_that_is_no_count_is_a_validation_error(portal, rsps, total):
    # The one integer parser (integration/core/inputs.py): int() raised a ValueError, a job
    # failing with a traceback instead of a validation failure naming the field.
    rsps.post(
        REST + "batch",
        json=ok({"result": {"a": []}, "result_error": [], "result_total": {"a": total}}),
    )
    with pytest.raises(inputs.InputError) as caught:
        bx_batch.batch(portal, {"a": ("crm.lead.list", {})})
    assert caught.value.field == "result_total[a]"


def test_batch_reads_results_as_an_object_beside_a_list_of_errors(portal, rsps):
    rsps.post(
        REST + "batch",
        json=ok(
            {
                "result": {"2": {"ID": "35943"}},
                "result_error": [NOT_DEFINED, NOT_FOUND_EMPTY],
                "result_total": [],
                "result_next": [],
                "result_time": {"2": {"duration": 0.006, "operating": 1.83}},
            }
        ),
    )
    commands = [("crm.lead.get", {"id": i}) for i in (0, 9, 35943)]
    out = bx_batch.batch(portal, commands)
    assert out.results == {"2": {"ID": "35943"}}
    assert set(out.errors) == {"0", "1"}


def test_not_found_with_an_empty_code_is_permanent():
    error = errors.error_build(code="", description="Not found", status=400, method="crm.lead.get")
    assert isinstance(error, PermanentError)
    assert error.code == ""
    assert "Not found" in error.message


def test_batch_result_time_feeds_the_ledger_of_each_commands_method(portal, rsps, settings):
    settings.BITRIX24_OPERATING_LIMIT_S = 10
    reset_at = time.time() + 40
    busy = {"duration": 0.1, "operating": 9.9, "operating_reset_at": reset_at}
    idle = {"duration": 0.1, "operating": 0.2, "operating_reset_at": reset_at}
    rsps.post(
        REST + "batch",
        json=ok(
            {
                "result": {"a": 1, "b": {}},
                "result_error": [],
                "result_time": {"a": busy, "b": idle},
            },
            time={"operating": 9.9, "operating_reset_at": reset_at},
        ),
    )
    bx_batch.batch(portal, {"a": ("crm.lead.add", {}), "b": ("user.current", None)})
    assert ratelimit.parked_for(client.method_key(portal, "crm.lead.add")) > 30
    assert ratelimit.parked_for(client.method_key(portal, "user.current")) == 0
    # the outer time repeats the busiest command's counter: `batch` itself stays free
    assert ratelimit.parked_for(client.method_key(portal, "batch")) == 0


def test_ledger_parks_for_the_default_time_without_operating_reset_at(portal, settings):
    settings.BITRIX24_OPERATING_LIMIT_S = 10
    settings.BITRIX24_OPERATING_DEFAULT_PARK_S = 60
    client.ledger_note(portal, "crm.lead.get", {"operating": 9.8})
    assert 50 < ratelimit.parked_for(client.method_key(portal, "crm.lead.get")) <= 60
