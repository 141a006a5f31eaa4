"""The event door: verified by application_token, stored once, answered at once."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from bitrixapp.models import BitrixEvent, Portal
from integration import jobs
from integration.bitrix.formdata import FormError, form_parse
from integration.calls import dial
from integration.calls.models import CallSync
from integration.models import Job

# Fixtures of the Bitrix24-side tests, scoped to this module (not to tests/bitrixapp as a whole).
from tests.integration.bitrix.fixtures import (  # noqa: F401  (pytest fixtures, by name)
    _bitrix_settings,
    payload_body,
    portal,
    rsps,
    sent,
)

pytestmark = pytest.mark.django_db(transaction=True)

FORM = "application/x-www-form-urlencoded"


def post(client, body: str):
    return client.post("/bitrix/events/", body, content_type=FORM)


def call_start(portal, **override) -> str:
    values = {
        "member_id": portal.member_id,
        "application_token": portal.application_token,
    } | override
    return payload_body("onexternalcallstart", **values)


def test_valid_call_event_is_stored_and_its_dial_job_started_in_the_same_request(client, portal):
    # when
    response = post(client, call_start(portal))
    # then: the event is stored and routed; a worker has one job to run, the dial itself
    assert response.status_code == 200
    event = BitrixEvent.objects.get()
    assert (event.portal, event.event, event.user_id) == (portal, "ONEXTERNALCALLSTART", 1269)
    assert event.data["CALL_ID"] == "externalCall.89350264e026dace3f2b14d1f438257c.1773236989"
    assert event.state == BitrixEvent.State.PROCESSED
    row = CallSync.objects.get()
    assert (row.bitrix_call_id, row.origin) == (
        event.data["CALL_ID"],
        CallSync.Origin.CLICK_TO_CALL,
    )
    [job] = Job.objects.all()
    assert job.kind == "call.dial"
    assert job.payload["sync_id"] == row.pk
    assert job.payload["lane"] == "interactive"
    # the click's deadline counts from when the event reached the app
    expected = event.received_at.timestamp() + settings.CALL_CLICK_DEADLINE_S
    assert job.payload["dial_by"] == pytest.approx(expected, abs=0.01)


def test_a_call_event_the_door_cannot_route_goes_to_a_worker_job(client, portal, monkeypatch):
    # given: routing at the door breaks (a bug, a database hiccup)
    def broken(*, event):
        CallSync.objects.create(portal=portal, bitrix_call_id="half-stored")
        raise RuntimeError("boom")

    monkeypatch.setattr(dial, "dial_event_route", broken)
    # when
    response = post(client, call_start(portal))
    # then: still 200 and stored, nothing half-routed, and a worker job routes it instead
    assert response.status_code == 200
    event = BitrixEvent.objects.get()
    assert event.state == BitrixEvent.State.RECEIVED
    assert not CallSync.objects.exists()
    job = Job.objects.get(kind="bitrix.event")
    assert job.payload == {"event_id": event.pk, "lane": "interactive"}


def test_stored_event_keeps_no_tokens(client, portal):
    post(client, call_start(portal))
    stored = json.dumps(list(BitrixEvent.objects.values()), default=str)
    assert "s6p6eclrvim6da22ft9ch94ekreb52lv" not in stored
    assert portal.application_token not in stored


def test_duplicate_event_is_stored_once(client, portal):
    first = post(client, call_start(portal))
    second = post(client, call_start(portal))
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicate"] is True
    assert BitrixEvent.objects.count() == 1
    assert Job.objects.filter(kind="call.dial").count() == 1
    assert CallSync.objects.count() == 1


def test_event_with_wrong_application_token_is_refused_and_nothing_stored(client, portal):
    response = post(client, call_start(portal, application_token="0" * 32))
    assert response.status_code == 401
    assert "application token" in response.json()["error"]
    assert not BitrixEvent.objects.exists()
    assert not Job.objects.exists()


def test_event_from_an_unknown_portal_is_refused_and_nothing_stored(client, portal):
    response = post(client, call_start(portal, member_id="f" * 32))
    assert response.status_code == 401
    assert not BitrixEvent.objects.exists()


def test_event_without_auth_is_a_400(client):
    response = post(client, "event=ONEXTERNALCALLSTART&data%5BCALL_ID%5D=x")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        "auth[member_id]=1&auth[member_id][x]=2&event=E",
        "a]b=1",
        "\xff\xfe",
        "auth=1&event=E",
        "data=1&event=E&auth[x]=1",
    ],
)
def test_malformed_bodies_are_400_not_500(client, body):
    assert post(client, body).status_code == 400


def test_oversized_body_is_400(client, portal, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    assert post(client, call_start(portal) + "&data[PAD]=" + "x" * 500).status_code == 400
    assert not BitrixEvent.objects.exists()


def test_get_is_not_allowed(client):
    assert client.get("/bitrix/events/").status_code == 405


def test_callback_event_without_tokens_in_auth_is_accepted(client, portal):
    body = payload_body(
        "onexternalcallbackstart",
        member_id=portal.member_id,
        application_token=portal.application_token,
    )
    assert post(client, body).status_code == 200
    assert BitrixEvent.objects.get().data["TEXT"] == "Call me back"


def test_uninstall_wipes_tokens_and_cancels_open_work(client, portal):
    # given
    open_job = Job.objects.create(
        kind="bitrix.event", portal=portal, idempotency_key="open-1", payload={"event_id": 0}
    )
    body = payload_body(
        "onappuninstall",
        member_id=portal.member_id,
        application_token=portal.application_token,
        clean="0",
    )
    # when
    assert post(client, body).status_code == 200
    # then
    stored = Portal.objects.get(pk=portal.pk)
    assert stored.status == Portal.Status.UNINSTALLED
    assert (stored.access_token, stored.refresh_token, stored.application_token) == ("", "", "")
    assert Job.objects.get(pk=open_job.pk).state == Job.State.CANCELLED
    # and later events of that portal are refused
    assert post(client, call_start(portal)).status_code == 401


def test_uninstall_with_clean_deletes_the_portal_data(client, portal):
    post(client, call_start(portal))
    body = payload_body(
        "onappuninstall",
        member_id=portal.member_id,
        application_token=portal.application_token,
        clean="1",
    )
    assert post(client, body).status_code == 200
    assert not Portal.objects.filter(pk=portal.pk).exists()
    assert not BitrixEvent.objects.exists()


def test_forged_uninstall_is_refused(client, portal):
    body = payload_body(
        "onappuninstall", member_id=portal.member_id, application_token="forged", clean="1"
    )
    assert post(client, body).status_code == 401
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.ACTIVE


def _stored_unrouted_event(client, portal, monkeypatch) -> Job:
    """An event the door stored but left to a worker (routing failed there, or stored before)."""
    with monkeypatch.context() as m:
        m.setattr(dial, "dial_event_route", lambda *, event: 1 / 0)
        post(client, call_start(portal))
    return Job.objects.get(kind="bitrix.event")


def test_worker_hands_the_event_to_the_call_pipeline(client, portal, monkeypatch):
    # given: the call pipeline's entry point, watched
    job = _stored_unrouted_event(client, portal, monkeypatch)
    seen = []
    monkeypatch.setattr(
        dial, "dial_event_route", lambda *, event: seen.append(event.data["CALL_ID"])
    )
    # when
    state = jobs.job_execute(job_id=job.pk)
    # then
    assert state == Job.State.SUCCEEDED
    assert seen == ["externalCall.89350264e026dace3f2b14d1f438257c.1773236989"]
    assert BitrixEvent.objects.get().state == BitrixEvent.State.PROCESSED


def test_worker_routes_the_event_and_marks_it_processed(client, portal, monkeypatch):
    job = _stored_unrouted_event(client, portal, monkeypatch)
    jobs.job_execute(job_id=job.pk)
    assert BitrixEvent.objects.get().state == BitrixEvent.State.PROCESSED
    assert CallSync.objects.get().origin == CallSync.Origin.CLICK_TO_CALL
    assert Job.objects.filter(kind="call.dial").count() == 1


def test_form_parser_builds_nested_maps_and_lists():
    parsed = form_parse(
        "event=E&data[CRM_BINDINGS][0][ENTITY_TYPE]=DEAL&data[L][]=a&data[L][]=b&auth[member_id]=m"
    )
    assert parsed == {
        "event": "E",
        "data": {"CRM_BINDINGS": {"0": {"ENTITY_TYPE": "DEAL"}}, "L": ["a", "b"]},
        "auth": {"member_id": "m"},
    }


def test_form_parser_reads_real_shaped_payload():
    parsed = form_parse(payload_body("onexternalcallstart", member_id="m1", application_token="t1"))
    assert parsed["auth"]["member_id"] == "m1"
    assert parsed["data"]["PHONE_NUMBER"] == "+494951234567"
    assert parsed["data"]["EXTENSION"] == ""


def test_form_parser_refuses_conflicting_keys():
    with pytest.raises(FormError):
        form_parse("a[b]=1&a=2")
    with pytest.raises(FormError):
        form_parse("a" + "[x]" * 20 + "=1")
