"""Ukrainian, Russian and English: LANG picks the language; no English left on uk/ru pages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.utils import translation

from integration.calls.models import FailedCall
from tests.pages.conftest import enter, fake_profile, open_item, users

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "pages"
TRANSLATED = ("uk", "ru")


def catalog(lang: str) -> dict[str, str]:
    """msgid -> msgstr of locale/<lang>/LC_MESSAGES/django.po (plurals: the first form)."""
    entries: dict[str, str] = {}
    text = (ROOT / "locale" / lang / "LC_MESSAGES" / "django.po").read_text()
    for block in text.split("\n\n"):
        parts: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            match = re.match(r"^(msgid_plural|msgid|msgstr(?:\[0\])?|msgstr\[\d\]) (\".*\")$", line)
            if match:
                key = match.group(1)
                parts[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and key:
                parts[key] += ast.literal_eval(line)
        if parts.get("msgid"):
            entries[parts["msgid"]] = parts.get("msgstr", parts.get("msgstr[0]", ""))
    return entries


def template_msgids(name: str) -> set[str]:
    text = (TEMPLATES / name).read_text()
    return set(re.findall(r'\{% translate "([^"]+)" %\}', text)) | set(
        re.findall(r"\{% translate '([^']+)' %\}", text)
    )


def visible_text(html: str) -> str:
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalog_entry_is_translated_and_compiled(lang):
    entries = catalog(lang)
    assert len(entries) > 100
    untranslated = [msgid for msgid, msgstr in entries.items() if not msgstr]
    assert untranslated == []
    with translation.override(lang):
        stale = [m for m, s in entries.items() if "%" not in m and translation.gettext(m) != s]
    assert stale == [], "run manage.py compilemessages"


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_every_template_string_is_in_the_catalog(name):
    missing = template_msgids(name) - set(catalog("uk"))
    assert missing == set(), "run manage.py makemessages"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_settings_page_has_no_english_left(client, portal, rsps, lang):
    # given
    users(portal)
    fake_profile(rsps)
    entries = catalog(lang)
    # when
    html = enter(client, portal, "/bitrix/app/settings/", lang=lang).content.decode()
    # then: no English UI string that has a different translation is visible
    text = visible_text(html)
    english = [
        m
        for m in template_msgids("settings.html") | template_msgids("base.html")
        if entries.get(m) != m and len(m) > 3 and re.search(rf"(?<!\w){re.escape(m)}(?!\w)", text)
    ]
    assert english == []
    assert f'<html lang="{lang}">' in html


def test_ukrainian_settings_page_reads_in_ukrainian(client, portal, rsps):
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/settings/", lang="ua").content.decode()
    assert "Зберегти налаштування" in html
    assert "Save settings" not in html


def test_russian_failed_list_reads_in_russian(client, portal, rsps):
    open_item(portal, kind=FailedCall.Kind.MISSED, with_job=False)
    fake_profile(rsps)
    html = enter(client, portal, "/bitrix/app/failed/", lang="ru").content.decode()
    assert "Пропущенные звонки" in html
    assert "Повторить выбранные" in html


def test_unknown_language_falls_back_to_the_portals(client, portal, rsps):
    portal.lang = "uk"
    portal.save()
    fake_profile(rsps, user_id="2", admin=False)
    html = enter(client, portal, "/bitrix/app/", lang="de").content.decode()
    assert "Огляд" in html


def test_an_admins_language_becomes_the_portals_for_notices(client, portal, rsps):
    fake_profile(rsps)
    enter(client, portal, "/bitrix/app/", lang="ru")
    portal.refresh_from_db()
    assert portal.lang == "ru"


def test_action_errors_follow_the_pages_language(client, portal):
    from tests.pages.conftest import token

    response = client.post(
        "/bitrix/actions/settings/key/",
        "{}",
        content_type="application/json",
        HTTP_X_APP_LANG="uk",
        **token(portal),
    )
    assert response.json()["errors"]["api_key"] == "Введіть API-ключ зі свого акаунта Unitalk."
