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
    assert seen["sent"] == ["init", "resize", "installFinish"]
