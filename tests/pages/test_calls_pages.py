"""Issue 16: live calls on the overview, the call card's stage, the call history and its CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from integration.calls import history, live
from integration.calls.models import Call, CallSync
from integration.unitalk.models import OperatorMapping
from tests.pages.conftest import enter, fake_profile, token, users

pytestmark = pytest.mark.django_db(transaction=True)

_ids = count(1)


def a_call(portal, *, minutes_ago: float = 1, **fields) -> Call:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    defaults = {
        "direction": Call.Direction.IN,
        "status": Call.Status.ENDED,
        "ended": True,
        "state": "ANSWER",
        "client_number": "380501112233",
        "operator_line": "101",
        "started_at": started,
        "answered_at": started + timedelta(seconds=5),
        "talk_seconds": 30,
    }
    return Call.objects.create(
        portal=portal, unitalk_call_id=f"c{next(_ids)}", **(defaults | fields)
    )


def ringing(portal, **fields) -> Call:
    return a_call(
        portal,
        minutes_ago=0.1,
        status=Call.Status.RINGING,
        ended=False,
        state="",
        answered_at=None,
        talk_seconds=None,
        **fields,
    )


def get(client, portal, path, **query):
    return client.get(path, query, **token(portal))


# --- Live calls ---------------------------------------------------------------------------------


def test_live_lists_ringing_and_talking_calls_with_names_and_crm(client, portal, other_portal):
    # given: a ringing call on line 101 (Anna), a talking one tied to a lead, an ended one, and
    # a ringing call of another portal
    users(portal)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=1, line="101")
    ringing(portal, client_number="380671111111")
    talking = ringing(portal, client_number="380672222222", operator_line="102")
    Call.objects.filter(pk=talking.pk).update(
        status=Call.Status.ANSWERED, answered_at=timezone.now() - timedelta(seconds=65)
    )
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=talking,
        user_id=2,
        crm_entity_type="LEAD",
        crm_entity_id=7,
    )
    a_call(portal)
    ringing(other_portal, client_number="380990000000")

    # when
    response = get(client, portal, "/bitrix/actions/calls/live/")

    # then
    assert response.status_code == 200
    data = response.json()
    assert [(c["number"], c["state"]) for c in data["calls"]] == [
        ("380671111111", "ringing"),
        ("380672222222", "talking"),
    ]
    first, second = data["calls"]
    assert first["user"] == {"id": 1, "name": "Anna Admin", "photo": "", "known": True}
    assert second["user"]["name"] == "Oleg"
    assert second["crm"] == {"type": "LEAD", "id": 7}
    assert 64 <= second["elapsed"] <= 70
    assert "Anna Admin" in data["html"]
    assert "380990000000" not in data["html"]


def test_live_is_one_cheap_read_per_poll(client, portal, django_assert_max_num_queries):
    for _ in range(20):
        ringing(portal)
    # one for the calls (with their syncs), one for the lines' owners
    with django_assert_max_num_queries(2):
        live.calls_live(portal=portal)


def test_live_forgets_a_call_whose_end_was_lost_after_the_window(client, portal, settings):
    settings.PAGES_LIVE_WINDOW_S = 600
    a_call(portal, minutes_ago=11, status=Call.Status.RINGING, ended=False)
    assert live.calls_live(portal=portal) == []


def test_live_needs_the_page_token(client, portal):
    assert client.get("/bitrix/actions/calls/live/").status_code in (401, 403)


def test_overview_shows_calls_now(client, portal, rsps):
    users(portal)
    fake_profile(rsps)
    ringing(portal, client_number="380673333333")
    html = enter(client, portal, "/bitrix/app/").content.decode()
    assert 'id="live"' in html
    assert "380673333333" in html


@pytest.mark.parametrize(
    ("stage", "status", "answered", "step", "reached"),
    [
        (CallSync.Stage.DIALING, None, False, "dialing", 1),
        (CallSync.Stage.REGISTERED, Call.Status.RINGING, False, "ringing", 2),
        (CallSync.Stage.REGISTERED, Call.Status.ANSWERED, True, "talking", 3),
        (CallSync.Stage.REGISTERED, Call.Status.ENDED, True, "ended", 3),
        (CallSync.Stage.RECORDED, Call.Status.ENDED, True, "saved", 4),
        (CallSync.Stage.FAILED, Call.Status.ENDED, True, "problem", 3),
    ],
)
def test_call_card_stage_follows_the_call(portal, stage, status, answered, step, reached):
    call = None
    if status is not None:
        call = a_call(
            portal,
            status=status,
            ended=status == Call.Status.ENDED,
            answered_at=timezone.now() if answered else None,
        )
    sync = CallSync.objects.create(
        portal=portal, origin=CallSync.Origin.CLICK_TO_CALL, call=call, stage=stage
    )
    shown = live.call_live_stage(sync=sync, dial_state=None)
    assert (shown["step"], shown["reached"]) == (step, reached)
    assert shown["recorded"] is (stage == CallSync.Stage.RECORDED)


@pytest.mark.parametrize(
    ("dial_state", "problem"),
    [
        ("failed", ""),  # the dial block says it, with "Try again": not twice
        ("retrying", ""),  # its progress is shown instead
        ("dialled", ""),  # a retry went through: the first failure is history
        (None, "Unitalk did not accept the call within 8 seconds"),
    ],
)
def test_a_click_unitalk_never_placed_stops_at_dialing(portal, dial_state, problem):
    # given: a click whose Bitrix24 call was closed with the failure's code, no Unitalk call
    sync = CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.CLICK_TO_CALL,
        stage=CallSync.Stage.FINISHED,
        failed_reason="Unitalk did not accept the call within 8 seconds",
    )
    shown = live.call_live_stage(sync=sync, dial_state=dial_state)
    if dial_state == "failed":
        assert (shown["step"], shown["reached"]) == ("problem", 1)
    assert shown["problem"] == problem


def test_the_card_of_a_click_that_was_not_placed_does_not_say_saved(client, portal):
    from integration import jobs
    from integration.models import Job

    sync = CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.CLICK_TO_CALL,
        bitrix_call_id="externalCall.failed",
        stage=CallSync.Stage.FINISHED,
        failed_reason="Unitalk did not accept the call within 8 seconds",
    )
    job = jobs.job_enqueue(
        kind="call.dial",
        key=f"call.dial:{sync.pk}",
        portal=portal,
        payload={"sync_id": sync.pk},
        publish=False,
    )
    Job.objects.filter(pk=job.pk).update(state=Job.State.DEAD)
    data = get(client, portal, "/bitrix/actions/call-card/", call_id="externalCall.failed").json()
    assert data["call"]["stage"] == "not_placed"
    assert 'data-s="dialing"' in data["call"]["steps_html"]
    assert 'class="bad" data-s="dialing"' in data["call"]["steps_html"]
    assert "Problem:" not in data["call"]["steps_html"]


def test_call_card_action_sends_the_steps(client, portal):
    call = ringing(portal)
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.CLICK_TO_CALL,
        call=call,
        bitrix_call_id="externalCall.live",
        stage=CallSync.Stage.REGISTERED,
        last_error="telephony.externalcall.register: ACCESS_DENIED",
    )
    data = get(client, portal, "/bitrix/actions/call-card/", call_id="externalCall.live").json()
    assert data["call"]["live"]["step"] == "ringing"
    assert 'data-step="ringing"' in data["call"]["steps_html"]
    assert "ACCESS_DENIED" in data["call"]["steps_html"]


# --- History ------------------------------------------------------------------------------------


def test_history_filters_by_outcome_direction_number_user_and_dates(client, portal):
    users(portal)
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=2, line="102")
    answered = a_call(portal, client_number="380501110000")
    missed = a_call(portal, state="NOANSWER", answered_at=None, talk_seconds=0)
    failed_out = a_call(
        portal, direction=Call.Direction.OUT, state="BUSY", answered_at=None, operator_line="102"
    )
    old = a_call(portal, minutes_ago=60 * 24 * 40)

    def ids(**query):
        response = get(client, portal, "/bitrix/actions/calls/history/", **query)
        assert response.status_code == 200, response.content
        return [c["id"] for c in response.json()["calls"]]

    assert set(ids()) == {answered.pk, missed.pk, failed_out.pk, old.pk}
    assert ids(outcome="missed") == [missed.pk]
    assert ids(outcome="failed") == [failed_out.pk]
    assert ids(direction="out") == [failed_out.pk]
    assert ids(number="1110000") == [answered.pk]
    assert ids(user="2") == [failed_out.pk]
    day = (timezone.localdate() - timedelta(days=41)).isoformat()
    last = (timezone.localdate() - timedelta(days=39)).isoformat()
    assert ids(date_from=day, date_to=last) == [old.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"date_from": "31.01.2025"}, "date_from"),
        ({"date_from": "2025-02-01", "date_to": "2025-01-01"}, "date_to"),
        ({"user": "anna"}, "user"),
        ({"direction": "sideways"}, "direction"),
        ({"outcome": "great"}, "outcome"),
        ({"number": "call me"}, "number"),
    ],
)
def test_history_refuses_a_filter_that_means_nothing(client, portal, query, field):
    response = get(client, portal, "/bitrix/actions/calls/history/", **query)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    csv_response = get(client, portal, "/bitrix/actions/calls/history.csv", **query)
    assert csv_response.status_code == 400


def test_history_rows_carry_player_sync_state_and_names(client, portal):
    users(portal)
    call = a_call(portal, recording_url="https://unitalk.example/rec/1.mp3")
    CallSync.objects.create(
        portal=portal,
        origin=CallSync.Origin.UNITALK,
        call=call,
        user_id=1,
        stage=CallSync.Stage.RECORDED,
    )
    data = get(client, portal, "/bitrix/actions/calls/history/").json()
    assert data["total_text"] == "1 call"
    assert '<audio controls preload="none" src="https://unitalk.example/rec/1.mp3">' in data["html"]
    assert "saved with recording" in data["html"]
    assert "Anna Admin" in data["html"]


def test_history_pages(client, portal, settings):
    settings.PAGES_HISTORY_PER_PAGE = 2
    for minutes in range(5):
        a_call(portal, minutes_ago=minutes + 1)
    data = get(client, portal, "/bitrix/actions/calls/history/", page="3").json()
    assert (data["page"], data["pages"], data["total"], len(data["calls"])) == (3, 3, 5, 1)


def test_history_csv_streams_this_portals_calls_only(client, portal, other_portal):
    users(portal, {1: "=HYPERLINK(evil)"})
    call = a_call(portal, client_number="380501119999")
    CallSync.objects.create(portal=portal, origin=CallSync.Origin.UNITALK, call=call, user_id=1)
    a_call(other_portal, client_number="380990009999")

    response = get(client, portal, "/bitrix/actions/calls/history.csv")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == list(history.CSV_HEADER)
    assert [r[4] for r in rows[1:]] == ["380501119999"]
    # a name that would be a formula in a spreadsheet is written as text
    assert rows[1][7] == "'=HYPERLINK(evil)"


def test_history_page_opens(client, portal, rsps):
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/history/", lang="uk").content.decode()
    assert 'id="history-filters"' in html
    assert "Історія дзвінків" in html
    assert "data-user-picker" in html


# --- Progress -----------------------------------------------------------------------------------


def test_a_running_job_reports_its_progress_and_a_finished_one_does_not(client, portal):
    from integration import jobs
    from integration.core import progress
    from integration.unitalk import services as unitalk_services

    job = jobs.job_enqueue(
        kind=unitalk_services.KIND_OPERATORS_SYNC, portal=portal, subject=f"portal:{portal.pk}"
    )
    progress.progress_set(kind=job.kind, portal_id=portal.pk, done=1, total=3, step="bitrix")
    data = get(client, portal, f"/bitrix/actions/jobs/{job.pk}/").json()
    assert data["progress"] == {"done": 1, "total": 3, "step": "bitrix"}
    job.state = job.State.SUCCEEDED
    job.save(update_fields=["state"])
    assert get(client, portal, f"/bitrix/actions/jobs/{job.pk}/").json()["progress"] is None
