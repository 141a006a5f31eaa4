"""timeman.* over real HTTP (docs/agents.md §1.1): the work-day state machine per user driven
by the portal's controllable clock, the documented answers and errors, the access check, the
"module not installed" switch, and batches of status polls."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.sandbox.bitrix.crmkit import control

MORNING = "2026-03-02T09:00:00+02:00"


@pytest.fixture
def clock(sandbox, portal):
    """Set or shift the portal clock: clock(now=...) / clock(shift_seconds=...)."""

    def move(**payload: Any) -> dict[str, Any]:
        answer = control(sandbox, portal, "clock", **payload)
        assert answer.status_code == 200, answer.text
        return answer.json()

    move(now=MORNING)
    return move


def _ok(answer: requests.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def _error(answer: requests.Response) -> tuple[int, str, str]:
    body = answer.json()
    return answer.status_code, body["error"], body["error_description"]


def as_user(sandbox, portal, http, user_id: int):
    token = control(sandbox, portal, "tokens", user_id=user_id).json()["access_token"]

    def call(method: str, params: dict[str, Any] | None = None) -> requests.Response:
        url = f"{portal['client_endpoint']}{method}"
        return http.post(url, json={"auth": token, **(params or {})})

    return call


def test_a_day_opens_pauses_resumes_and_closes_with_leaks_and_duration(clock, rest):
    before = _ok(rest("timeman.status", {"USER_ID": 2}))
    opened = _ok(rest("timeman.open", {"USER_ID": 2}))
    clock(shift_seconds=3600)
    paused = _ok(rest("timeman.pause", {"USER_ID": 2}))
    clock(shift_seconds=600)
    resumed = _ok(rest("timeman.open", {"USER_ID": 2}))
    clock(shift_seconds=1800)
    closed = _ok(rest("timeman.close", {"USER_ID": 2}))

    assert before["STATUS"] == "CLOSED"
    assert before["TIME_START"] is None
    assert opened == {
        "STATUS": "OPENED",
        "TIME_START": MORNING,
        "TIME_FINISH": None,
        "DURATION": "00:00:00",
        "TIME_LEAKS": "00:00:00",
        "ACTIVE": True,
        "IP_OPEN": "",
        "IP_CLOSE": "",
        "LAT_OPEN": 0,
        "LON_OPEN": 0,
        "LAT_CLOSE": 0,
        "LON_CLOSE": 0,
        "TZ_OFFSET": 7200,
    }
    assert paused["STATUS"] == "PAUSED"
    assert paused["TIME_LEAKS"] == "00:00:00"
    assert resumed["STATUS"] == "OPENED"
    assert resumed["TIME_LEAKS"] == "00:10:00"
    assert closed["STATUS"] == "CLOSED"
    assert closed["TIME_FINISH"].startswith("2026-03-02T10:40:")
    assert closed["TIME_FINISH"].endswith("+02:00")
    assert closed["DURATION"].startswith("01:30:")  # 1 h 40 min minus the 10 min break
    assert _ok(rest("timeman.status", {"USER_ID": 2}))["STATUS"] == "CLOSED"


def test_reopening_todays_closed_day_continues_it_and_counts_the_gap_as_a_break(clock, rest):
    _ok(rest("timeman.open"))
    clock(shift_seconds=60)
    _ok(rest("timeman.close"))
    clock(shift_seconds=300)
    reopened = _ok(rest("timeman.open"))

    assert reopened["STATUS"] == "OPENED"
    assert reopened["TIME_START"] == MORNING
    assert reopened["TIME_FINISH"] is None
    assert reopened["TIME_LEAKS"].startswith("00:05:")


def test_an_open_day_expires_at_midnight_and_closes_only_on_its_own_date(clock, rest):
    clock(now="2026-03-02T23:50:00+02:00")
    _ok(rest("timeman.open", {"USER_ID": 2}))
    assert _ok(rest("timeman.status", {"USER_ID": 2}))["STATUS"] == "OPENED"
    clock(shift_seconds=20 * 60)

    expired = _ok(rest("timeman.status", {"USER_ID": 2}))
    reopen = _ok(rest("timeman.open", {"USER_ID": 2}))
    close_now = rest("timeman.close", {"USER_ID": 2})
    close_late = rest(
        "timeman.close", {"USER_ID": 2, "TIME": "2026-03-02T23:59:00+02:00", "REPORT": "forgot"}
    )

    assert expired["STATUS"] == "EXPIRED"
    assert expired["TIME_FINISH"] is None
    assert expired["TIME_FINISH_DEFAULT"] == "2026-03-02T17:45:00+02:00"
    assert reopen["STATUS"] == "EXPIRED"  # an expired day must be closed first
    assert _error(close_now) == (
        400,
        "WRONG_DATETIME",
        "Day close date should correspond to the day open date",
    )
    closed = _ok(close_late)
    assert closed["STATUS"] == "CLOSED"
    assert closed["TIME_FINISH"] == "2026-03-02T23:59:00+02:00"
    assert closed["DURATION"] == "00:09:00"
    assert "TIME_FINISH_DEFAULT" not in closed


def test_a_paused_day_expires_too(clock, rest):
    _ok(rest("timeman.open"))
    _ok(rest("timeman.pause"))
    clock(shift_days=1)
    assert _ok(rest("timeman.status"))["STATUS"] == "EXPIRED"


def test_open_with_time_must_be_today_needs_a_report_and_not_a_paused_day(
    clock, rest, sandbox, portal
):
    wrong_day = rest("timeman.open", {"TIME": "2026-03-01T09:00:00+02:00", "REPORT": "x"})
    no_report = rest("timeman.open", {"TIME": "2026-03-02T08:30:00+02:00"})
    bad_format = rest("timeman.open", {"TIME": "yesterday", "REPORT": "x"})
    with_report = _ok(
        rest("timeman.open", {"TIME": "2026-03-02T08:30:00+03:00", "REPORT": "late start"})
    )
    _ok(rest("timeman.pause"))
    paused = rest("timeman.open", {"TIME": "2026-03-02T10:00:00+02:00", "REPORT": "x"})

    assert _error(wrong_day) == (
        400,
        "WRONG_DATETIME",
        "Day open date should correspond to the current date",
    )
    assert _error(no_report)[:2] == (400, "ERROR_ARGUMENT")
    assert _error(bad_format)[:2] == (400, "WRONG_DATETIME")
    assert with_report["TIME_START"] == "2026-03-02T08:30:00+03:00"
    assert with_report["TZ_OFFSET"] == 10800  # the zone of TIME becomes the day's zone
    assert _error(paused) == (400, "TIME", "Unable to set time, work day is paused")

    control(sandbox, portal, "user-state", user_id=2, free=True)
    free = rest("timeman.open", {"USER_ID": 2, "TIME": "2026-03-02T08:00:00+02:00"})
    assert _ok(free)["STATUS"] == "OPENED"


def test_close_with_time_needs_a_report_unless_the_schedule_is_free(clock, rest, sandbox, portal):
    _ok(rest("timeman.open"))
    clock(shift_seconds=3600)
    missing = rest("timeman.close", {"TIME": "2026-03-02T09:30:00+02:00"})
    control(sandbox, portal, "user-state", user_id=1, free=True)
    closed = _ok(rest("timeman.close", {"TIME": "2026-03-02T09:30:00+02:00"}))

    assert _error(missing)[:2] == (400, "ERROR_ARGUMENT")
    assert closed["DURATION"] == "00:30:00"


def test_coordinates_are_kept(clock, rest):
    opened = _ok(rest("timeman.open", {"LAT": "50.45", "LON": 30.52}))
    closed = _ok(rest("timeman.close", {"LAT": 50.46, "LON": "30.53"}))
    assert (opened["LAT_OPEN"], opened["LON_OPEN"]) == (50.45, 30.52)
    assert (closed["LAT_CLOSE"], closed["LON_CLOSE"]) == (50.46, 30.53)


@pytest.mark.parametrize("method", ["status", "open", "pause", "close", "settings"])
def test_an_unknown_user_is_user_not_found_with_an_empty_code(rest, method):
    for user_id in (999, "abc"):
        answer = rest(f"timeman.{method}", {"USER_ID": user_id})
        assert _error(answer) == (400, "", "User not found")


def test_a_non_admin_reads_only_their_own_day(sandbox, portal, http, rest):
    oleg = as_user(sandbox, portal, http, 2)

    own = oleg("timeman.open")
    other = oleg("timeman.status", {"USER_ID": 1})
    other_open = oleg("timeman.open", {"USER_ID": 1})
    other_settings = oleg("timeman.settings", {"USER_ID": 1})
    admin_reads = rest("timeman.status", {"USER_ID": 2})

    assert _ok(own)["STATUS"] == "OPENED"
    for refused in (other, other_open, other_settings):
        assert _error(refused) == (403, "ACCESS_DENIED", "Access denied!")
    assert _ok(admin_reads)["STATUS"] == "OPENED"
    assert _ok(rest("timeman.status", {"USER_ID": 1}))["STATUS"] == "CLOSED"


def test_settings_per_user_with_admin_only_for_oneself(sandbox, portal, http, rest):
    control(sandbox, portal, "user-state", user_id=2, timeman=False, free=True)

    own = _ok(rest("timeman.settings"))
    other = _ok(rest("timeman.settings", {"USER_ID": 2}))
    oleg_own = _ok(as_user(sandbox, portal, http, 2)("timeman.settings"))

    assert own == {
        "UF_TIMEMAN": True,
        "UF_TM_FREE": False,
        "UF_TM_MAX_START": "09:15:00",
        "UF_TM_MIN_FINISH": "17:45:00",
        "UF_TM_MIN_DURATION": "08:00:00",
        "UF_TM_ALLOWED_DELTA": "00:15:00",
        "ADMIN": True,
    }
    assert other["UF_TIMEMAN"] is False
    assert other["UF_TM_FREE"] is True
    assert "ADMIN" not in other
    assert oleg_own["ADMIN"] is False


def test_without_the_module_every_timeman_method_is_unknown(sandbox, portal, rest):
    assert control(sandbox, portal, "timeman-module", installed=False).json() == {
        "installed": False
    }
    direct = rest("timeman.status", {"USER_ID": 2})
    batch = _ok(
        rest(
            "batch",
            {"cmd": {"t": "timeman.status?USER_ID=2", "u": "user.get?ID=2"}},
        )
    )

    assert _error(direct) == (404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    assert batch["result_error"]["t"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert batch["result"]["u"][0]["ID"] == "2"

    control(sandbox, portal, "timeman-module", installed=True)
    assert _ok(rest("timeman.status", {"USER_ID": 2}))["STATUS"] == "CLOSED"
    assert control(sandbox, portal, "timeman-module").status_code == 400


def test_a_batch_polls_fifty_users_in_one_request(sandbox, portal, rest):
    for n in range(3, 52):
        control(sandbox, portal, "users", ID=str(n), NAME=f"Agent{n}", ADMIN=False)
    control(sandbox, portal, "workday", user_id=7, op="open")
    control(sandbox, portal, "workday", user_id=9, op="open")
    control(sandbox, portal, "workday", user_id=9, op="pause")
    cmd = {f"u{n}": f"timeman.status?USER_ID={n}" for n in range(2, 52)}

    result = _ok(rest("batch", {"halt": 0, "cmd": cmd}))

    assert len(result["result"]) == 50
    assert result["result_error"] == []
    statuses = {key: value["STATUS"] for key, value in result["result"].items()}
    assert statuses["u7"] == "OPENED"
    assert statuses["u9"] == "PAUSED"
    assert {v for k, v in statuses.items() if k not in ("u7", "u9")} == {"CLOSED"}


def test_repeated_or_out_of_order_calls_leave_the_day_as_it_is(clock, rest):
    paused_closed = _ok(rest("timeman.pause"))
    closed_closed = _ok(rest("timeman.close"))
    _ok(rest("timeman.open"))
    clock(shift_seconds=60)
    open_again = _ok(rest("timeman.open"))
    _ok(rest("timeman.pause"))
    clock(shift_seconds=120)
    _ok(rest("timeman.pause"))  # a second pause does not restart the break
    clock(shift_seconds=60)
    resumed = _ok(rest("timeman.open"))

    assert (paused_closed["STATUS"], paused_closed["TIME_START"]) == ("CLOSED", None)
    assert (closed_closed["STATUS"], closed_closed["TIME_START"]) == ("CLOSED", None)
    assert (open_again["STATUS"], open_again["TIME_START"]) == ("OPENED", MORNING)
    assert resumed["TIME_LEAKS"] == "00:03:00"


def test_a_day_opened_late_in_another_zone_expires_at_its_own_midnight(clock, rest):
    # 23:30 in Kyiv summer time (+03:00) is 22:30 at the portal's +02:00: the day's own zone
    # decides when midnight comes.
    clock(now="2026-03-02T23:30:00+03:00")
    _ok(rest("timeman.open", {"TIME": "2026-03-02T23:30:00+03:00", "REPORT": "night shift"}))
    clock(shift_seconds=20 * 60)
    assert _ok(rest("timeman.status"))["STATUS"] == "OPENED"
    clock(shift_seconds=20 * 60)
    assert _ok(rest("timeman.status"))["STATUS"] == "EXPIRED"
