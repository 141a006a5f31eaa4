"""The sandbox portal frames its app in the language its users read (LANG, docs/sandbox.md)."""

from __future__ import annotations


def test_portal_language_is_the_lang_of_every_app_frame(sandbox, portal, http):
    base = f"{sandbox.bitrix_url}/_sandbox/portals/{portal['member_id']}/settings"
    assert http.post(base, json={"lang": "xx"}).status_code == 400
    assert http.post(base, json={"lang": "ua"}).status_code == 200
    page = http.get(f"{sandbox.bitrix_url}/portal/{portal['member_id']}/?user=1").text
    assert "LANG=ua" in page
    assert "LANG=en" not in page
