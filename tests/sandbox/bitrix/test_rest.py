"""The Bitrix24 portal simulator over real HTTP: envelope, limits, errors, batch, paging."""

from __future__ import annotations

import requests


def test_success_envelope_carries_time_with_operating(rest):
    response = rest("user.current")

    assert response.status_code == 200
    body = response.json()
    assert body["result"]["UF_PHONE_INNER"] == "101"
    assert {"start", "finish", "duration", "operating", "operating_reset_at"} <= set(body["time"])


def test_burst_of_60_passes_50_then_query_limit_exceeded(portal, http):
    url = f"{portal['client_endpoint']}app.info"

    statuses = [http.get(url, params={"auth": portal["access_token"]}) for _ in range(60)]

    assert [r.status_code for r in statuses[:50]] == [200] * 50
    assert [r.status_code for r in statuses[50:]] == [503] * 10
    assert statuses[-1].json() == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }


def test_per_portal_bucket_override(sandbox, http):
    portal = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals", json={"burst": 5, "drain": 1}
    ).json()
    url = f"{portal['client_endpoint']}profile"

    statuses = [
        http.get(url, params={"auth": portal["access_token"]}).status_code for _ in range(7)
    ]

    assert statuses == [200] * 5 + [503] * 2


def test_operating_budget_blocks_only_that_method(sandbox, http):
    portal = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals",
        json={"operating_limit": 1, "operating_cost": 0.4},
    ).json()
    auth = {"auth": portal["access_token"]}
    url = portal["client_endpoint"]

    statuses = [http.post(url + "user.current", json=auth).status_code for _ in range(4)]
    blocked = http.post(url + "user.current", json=auth)
    other = http.post(url + "profile", json=auth)

    assert statuses == [200, 200, 200, 429]
    assert blocked.json()["error"] == "OPERATION_TIME_LIMIT"
    assert other.status_code == 200


def test_expired_token_gives_401_expired_token(sandbox, portal, rest, http):
    http.post(f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/expire")

    response = rest("user.current")

    assert response.status_code == 401
    assert response.json() == {
        "error": "expired_token",
        "error_description": "The access token provided has expired",
    }


def test_unknown_token_gives_invalid_token_and_no_token_no_auth_found(portal, http):
    unknown = http.post(f"{portal['client_endpoint']}profile", json={"auth": "nope"})
    missing = http.post(f"{portal['client_endpoint']}profile", json={})

    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_token")
    assert (missing.status_code, missing.json()["error"]) == (401, "NO_AUTH_FOUND")


def test_token_accepted_as_bearer_and_method_names_ignore_case(portal, http):
    response = http.post(
        f"{portal['client_endpoint']}USER.Current.json",
        headers={"Authorization": f"Bearer {portal['access_token']}"},
    )

    assert response.status_code == 200
    assert response.json()["result"]["ID"] == "1"


def test_unknown_method_is_404_method_not_found(rest):
    response = rest("crm.nothing.here")

    assert response.status_code == 404
    assert response.json()["error"] == "ERROR_METHOD_NOT_FOUND"


def test_form_body_with_bracketed_keys(portal, http):
    response = http.post(
        f"{portal['client_endpoint']}crm.lead.add",
        data={
            "auth": portal["access_token"],
            "FIELDS[TITLE]": "From a form",
            "FIELDS[PHONE][0][VALUE]": "+380501112233",
            "FIELDS[PHONE][0][VALUE_TYPE]": "WORK",
        },
    )
    lead = http.post(
        f"{portal['client_endpoint']}crm.lead.get",
        json={"auth": portal["access_token"], "id": response.json()["result"]},
    ).json()["result"]

    assert lead["TITLE"] == "From a form"
    assert lead["PHONE"][0]["VALUE"] == "+380501112233"


def test_batch_of_51_runs_50_and_rejects_the_51st(rest):
    cmd = {f"c{i}": "user.current" for i in range(51)}

    response = rest("batch", {"halt": 0, "cmd": cmd})

    assert response.status_code == 200
    result = response.json()["result"]
    assert len(result["result"]) == 50
    assert result["result_error"] == {
        "c50": {
            "error": "ERROR_BATCH_LENGTH_EXCEEDED",
            "error_description": "Max batch length exceeded",
        }
    }


def test_batch_halt_references_and_list_form(rest):
    rest("crm.lead.add", {"fields": {"TITLE": "A"}})

    response = rest(
        "batch",
        {
            "halt": 1,
            "cmd": [
                "crm.lead.list?start=0",
                "crm.lead.get?id=$result[0][0][ID]",
                "nope",
                "profile",
            ],
        },
    )

    result = response.json()["result"]
    # PHP arrays keyed 0..n-1 are JSON lists: results 0 and 1 (halted at 2) come as a list.
    assert len(result["result"]) == 2
    assert result["result"][1]["TITLE"] == "A"
    assert result["result_error"]["2"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert result["result_total"] == [1]


def test_batch_maps_are_objects_unless_keyed_0_to_n(rest):
    rest("crm.lead.add", {"fields": {"TITLE": "A"}})

    result = rest("batch", {"cmd": ["nope", "profile", "crm.lead.get?id=1"]}).json()["result"]

    assert set(result["result"]) == {"1", "2"}
    assert result["result_error"] == [
        {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    ]
    assert set(result["result_time"]) == {"1", "2"}


def test_batch_where_every_command_fails_answers_like_php(rest):
    """fast_bitrix24's recorded crm_get_batch_of_two_error: lists, empty codes (issue 19, 2-3)."""
    result = rest("batch", {"cmd": ["crm.lead.get?id=0", "crm.lead.get?id=999"]}).json()["result"]

    assert result["result"] == []
    assert result["result_error"] == [
        {"error": "", "error_description": "ID is not defined or invalid."},
        {"error": "", "error_description": "Not found"},
    ]
    assert result["result_time"] == []


def test_batch_timings_carry_operating_inside_and_outside(rest):
    """Each result_time entry and the outer time carry `operating` (issue 19, item 5)."""
    body = rest("batch", {"cmd": {"me": "user.current", "p": "profile"}}).json()

    times = body["result"]["result_time"]
    assert times["me"]["operating"] > 0
    assert {"operating", "operating_reset_at"} <= set(times["p"])
    assert body["time"]["operating"] == max(t["operating"] for t in times.values())


def test_batch_substitutes_references_sent_raw_or_percent_encoded(rest):
    """b24pysdk and the app percent-encode references; raw ones work too (issue 19, item 1)."""
    cmd = {
        "add": "crm.lead.add?fields%5BTITLE%5D=Ref",
        "raw": "crm.lead.get?id=$result[add]",
        "encoded": "crm.lead.get?id=%24result%5Badd%5D",
        "nested": "crm.lead.list?filter%5B%3DID%5D=%24result%5Braw%5D%5BID%5D",
    }

    result = rest("batch", {"cmd": cmd}).json()["result"]

    assert result["result_error"] == []
    assert result["result"]["raw"]["TITLE"] == "Ref"
    assert result["result"]["encoded"]["TITLE"] == "Ref"
    assert [lead["TITLE"] for lead in result["result"]["nested"]] == ["Ref"]


def test_nested_batch_is_not_allowed(rest):
    result = rest("batch", {"cmd": {"a": "batch?cmd[x]=profile"}}).json()["result"]

    assert result["result_error"]["a"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_list_paging_50_per_page_next_total_and_start_minus_one(sandbox, portal, rest, http):
    for i in range(120):
        http.post(
            f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/lead",
            json={"phone": f"38050000{i:04d}"},
        )

    first = rest("crm.lead.list").json()
    last = rest("crm.lead.list", {"start": 100}).json()
    uncounted = rest("crm.lead.list", {"start": -1}).json()

    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 120)
    assert len(last["result"]) == 20
    assert "next" not in last
    assert last["total"] == 120
    assert len(uncounted["result"]) == 50
    assert "total" not in uncounted
    assert "next" not in uncounted


def test_malformed_json_is_treated_as_empty_params(portal, http):
    response = http.post(
        f"{portal['client_endpoint']}crm.lead.add?auth={portal['access_token']}",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "ERROR_ARGUMENT"


def test_wrong_types_get_error_envelopes(rest):
    finish = rest("telephony.externalcall.finish", {"CALL_ID": 12345})
    lead = rest("crm.lead.add", {"fields": "not an object"})
    listing = rest("crm.lead.list", {"filter": ["x"], "start": "abc"})

    assert (finish.status_code, finish.json()["error"]) == (400, "INVALID_ARGUMENT")
    assert finish.json()["error_description"] == "CALL_ID must be a string"
    assert lead.status_code == 400
    assert "error" in lead.json()
    assert listing.status_code == 200


def test_no_traceback_page_for_garbage_path(sandbox, http):
    response = http.post(f"{sandbox.bitrix_url}/rest/a/b/c", data=b"\xff\xfe")

    assert response.status_code == 404
    assert response.json()["error"] == "ERROR_METHOD_NOT_FOUND"


def test_notification_with_repeated_tag_replaces_the_old_one(sandbox, portal, rest, http):
    rest("im.notify.system.add", {"USER_ID": 1, "MESSAGE": "Missed call 1", "TAG": "missed|1"})
    rest("im.notify.system.add", {"USER_ID": 1, "MESSAGE": "Missed call 2", "TAG": "missed|1"})
    empty = rest("im.notify.system.add", {"USER_ID": 1, "MESSAGE": ""})

    state = http.get(f"{sandbox.bitrix_url}/_sandbox/state").json()
    notes = state["portals"][portal["member_id"]]["notifications"]
    assert [n["MESSAGE"] for n in notes] == ["Missed call 2"]
    assert empty.json()["error"] == "MESSAGE_EMPTY"


def test_disk_storage_folder_upload_and_get(sandbox, rest, http):
    storage = rest("disk.storage.getForApp").json()["result"]
    folder = rest(
        "disk.folder.addSubFolder", {"id": storage["ROOT_OBJECT_ID"], "data": {"NAME": "2026-05"}}
    ).json()["result"]
    again = rest(
        "disk.folder.addSubFolder", {"id": storage["ROOT_OBJECT_ID"], "data": {"NAME": "2026-05"}}
    )
    uploaded = rest(
        "disk.folder.uploadFile",
        {"id": folder["ID"], "data": {"NAME": "a.txt"}, "fileContent": ["a.txt", "aGVsbG8="]},
    ).json()["result"]
    fetched = rest("disk.file.get", {"id": uploaded["ID"]}).json()["result"]

    assert again.json()["error"] == "DISK_OBJ_22000"
    assert fetched["NAME"] == "a.txt"
    assert fetched["SIZE"] == "5"
    assert requests.get(fetched["DOWNLOAD_URL"], timeout=5).content == b"hello"


def test_non_admin_cannot_bind_placements(sandbox, portal, http):
    tokens = http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/tokens", json={"user_id": 2}
    ).json()

    response = http.post(
        f"{portal['client_endpoint']}placement.bind",
        json={"auth": tokens["access_token"], "PLACEMENT": "CALL_CARD", "HANDLER": "http://a.b/"},
    )
    admin = http.post(
        f"{portal['client_endpoint']}user.admin", json={"auth": tokens["access_token"]}
    )

    assert (response.status_code, response.json()["error"]) == (403, "ACCESS_DENIED")
    assert admin.json()["result"] is False


def test_placement_bind_get_unbind(rest):
    bound = rest(
        "placement.bind",
        {"PLACEMENT": "crm_lead_detail_tab", "HANDLER": "http://127.0.0.1:8000/bitrix/placement/"},
    )
    localhost = rest("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "http://localhost/"})
    listed = rest("placement.get").json()["result"]
    unbound = rest("placement.unbind", {"PLACEMENT": "CRM_LEAD_DETAIL_TAB"}).json()["result"]

    assert bound.json()["result"] is True
    assert localhost.json()["error"] == "ERROR_WRONG_HANDLER_URL"
    assert listed[0]["placement"] == "CRM_LEAD_DETAIL_TAB"
    assert unbound == {"count": 2}


def test_answers_carry_rest_time_headers(rest):
    """X-Bitrix-Rest-User-Time / -System-Time: CPU seconds, as the cloud sends (item 6)."""
    response = rest("crm.lead.list")

    for name in ("X-Bitrix-Rest-Time", "X-Bitrix-Rest-User-Time", "X-Bitrix-Rest-System-Time"):
        assert float(response.headers[name]) >= 0
    assert response.headers["X-Bitrix-Rest-Application"]


def test_user_admin_answers_per_user(sandbox, portal, http):
    control = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}"
    http.post(f"{control}/users", json={"ID": "3", "NAME": "Ira", "ADMIN": True})
    answers = {}
    for user_id in ("1", "2", "3"):
        token = http.post(f"{control}/tokens", json={"user_id": user_id}).json()["access_token"]
        answers[user_id] = http.post(
            f"{portal['client_endpoint']}user.admin", json={"auth": token}
        ).json()["result"]

    assert answers == {"1": True, "2": False, "3": True}


def test_every_portal_has_its_own_rest_base_that_refuses_other_portals_tokens(sandbox, http):
    # given: two portals, as two Bitrix24 accounts on their own hosts
    a = http.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={}).json()
    b = http.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={}).json()
    # when: B's (admin) token is sent to A's REST base, and each token to its own base
    foreign = http.post(f"{a['client_endpoint']}profile", json={"auth": b["access_token"]})
    own_a = http.post(f"{a['client_endpoint']}profile", json={"auth": a["access_token"]})
    own_b = http.post(f"{b['client_endpoint']}profile", json={"auth": b["access_token"]})
    batch = http.post(
        f"{a['client_endpoint']}batch", json={"auth": b["access_token"], "cmd": {"me": "profile"}}
    )
    # then
    assert a["client_endpoint"] != b["client_endpoint"]
    assert a["client_endpoint"].endswith(f"/portal/{a['member_id']}/rest/")
    assert (foreign.status_code, foreign.json()["error"]) == (401, "invalid_token")
    assert (batch.status_code, batch.json()["error"]) == (401, "invalid_token")
    assert own_a.status_code == own_b.status_code == 200


def test_the_oauth_server_names_each_portals_own_rest_base(sandbox, http):
    a = http.post(f"{sandbox.bitrix_url}/_sandbox/portals", json={}).json()
    info = http.get(f"{sandbox.oauth_url}/rest/app.info", params={"auth": a["access_token"]})

    assert info.json()["result"]["install"]["client_endpoint"] == a["client_endpoint"]
    assert info.json()["result"]["install"]["member_id"] == a["member_id"]


def test_admitted_requests_are_counted_per_portal_and_method(rest, portal, sandbox, http):
    """Benchmarks read what a job kind spent (bench/agent_status.py: the polls' batches)."""
    rest("user.current")
    rest("batch", {"cmd": {"a": "timeman.status?USER_ID=1", "b": "user.current"}})
    rest("batch", {"cmd": ["user.get?ID=1"]})

    counts = http.get(f"{sandbox.bitrix_url}/_sandbox/state").json()["requests"]

    assert counts[portal["member_id"]] == {
        "user.current": 1,
        "batch:timeman.status": 1,
        "batch:user.get": 1,
    }
