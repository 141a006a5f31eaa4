"""`/bx24.js` driven by node with a fake parent page: init, placement.info, callMethod, installFinish."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import sandbox

HARNESS = Path(__file__).with_name("bx24_harness.js")
SCRIPT = Path(sandbox.__file__).with_name("assets") / "bx24.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_bx24_js_talks_to_parent_and_rest(sandbox, portal):
    run = subprocess.run(
        [
            "node",
            str(HARNESS),
            str(SCRIPT),
            sandbox.bitrix_url,
            portal["access_token"],
            portal["member_id"],
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    seen = json.loads(run.stdout)

    assert seen["placement"] == {"placement": "CRM_LEAD_DETAIL_TAB", "options": {"ID": "7"}}
    assert seen["auth"]["access_token"] == portal["access_token"]
    assert seen["user"]["ID"] == "1"
    assert seen["error"] is None
    assert seen["sent"] == [
        "init",
        "resize",
        "installFinish",
        "selectUser",
        "selectUser",
        "selectUsers",
    ]
    # the chosen person comes back as Bitrix24's dialog gives it; a closed dialog calls nothing
    assert [p["id"] if isinstance(p, dict) else [u["id"] for u in p] for p in seen["picked"]] == [
        2,
        [1, 2],
    ]


def test_user_pickers_list_the_portals_active_employees_with_photos(sandbox, portal, http):
    # given: a third employee added on the portal
    http.post(
        f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/users",
        json={"ID": "3", "NAME": "Ira", "LAST_NAME": "Nova"},
    )
    # when the portal page asks for the people its dialog offers
    users = http.get(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/users.json").json()
    # then: each as {id, name} (what the app is handed), with a face for the dialog
    first = users["users"][0]
    assert (first["id"], first["name"]) == (1, "Anna Admin")
    assert [u["name"] for u in users["users"]] == ["Anna Admin", "Oleg Operator", "Ira Nova"]
    assert first["_photo"] == f"{sandbox.bitrix_url}/avatar/1.svg"
    avatar = http.get(first["_photo"])
    assert avatar.status_code == 200
    assert avatar.headers["Content-Type"].startswith("image/svg+xml")


def test_user_get_gives_personal_photo(rest, sandbox):
    rows = rest("user.get", {"FILTER": {"ID": 2}}).json()["result"]
    assert rows[0]["PERSONAL_PHOTO"] == f"{sandbox.bitrix_url}/avatar/2.svg"
