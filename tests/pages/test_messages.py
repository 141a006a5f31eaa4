"""Stored messages are codes + parameters, rendered in the reader's language (issue 21 item 4).

Every code in `integration.core.messages.MESSAGES` is rendered in uk and ru with counts 1, 2 and 5:
it must not be English, must carry its parameters, must not leak the technical detail, and
its counted words must take the plural form the language needs (1 / 2 / 5 differ in uk, ru).
"""

from __future__ import annotations

import pytest
from django.utils import translation

from integration.core import alerts, messages
from integration.models import Notification
from tests.pages.conftest import token, users

DETAIL = "unitalk users/list: Authorization invalid (call.dial, call-sync:5)"


def params_for(kind: str, n: int) -> dict:
    """Parameters of each code, with `n` where the message counts something."""
    lines = [str(101 + i) for i in range(n)]
    return {
        "unitalk.credentials_invalid": {"key": "****ey99"},
        "unitalk.unmapped_lines": {"lines": lines},
        "bitrix.install_refused": {"user": 7},
        "jobs.dead": {"n": n},
        "call.missed": {"phone": "380671234567"},
        "call.dial_failed": {"phone": "380671234567"},
        "call.crm_sync_failed": {"phone": "380671234567"},
        "agents.sync_failed": {"name": "Oleg Operator"},
        "agents.poll_failed": {"n": n},
        "campaign.agent_paused": {"campaign": "Spring leads", "n": n, "name": "Oleg Operator"},
        "campaign.auto_paused": {"campaign": "Spring leads", "n": n},
    }.get(kind, {})


#: The plural form each count must take, per counted code and language.
PLURALS = {
    "uk": {
        "unitalk.unmapped_lines": {1: "1 лінія", 2: "2 лінії", 5: "5 ліній"},
        "jobs.dead": {1: "1 завдання", 2: "2 завдання", 5: "5 завдань"},
        "repeat": {1: "", 2: "2 рази", 5: "5 разів"},
    },
    "ru": {
        "unitalk.unmapped_lines": {1: "1 линия", 2: "2 линии", 5: "5 линий"},
        "jobs.dead": {1: "1 задачу", 2: "2 задачи", 5: "5 задач"},
        "repeat": {1: "", 2: "2 раза", 5: "5 раз"},
    },
}


@pytest.mark.parametrize("lang", ["uk", "ru"])
@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("kind", sorted(messages.MESSAGES))
def test_every_stored_message_kind_reads_in_the_readers_language(kind, n, lang):
    # given: the code and parameters a row stores
    params = params_for(kind, n)
    with translation.override("en"):
        english = messages.message_render(kind=kind, params=params, detail=DETAIL)
    # when
    with translation.override(lang):
        shown = messages.message_render(kind=kind, params=params, detail=DETAIL)
    # then: translated, with its parameters, and no internal text
    assert shown.title
    assert shown.text
    assert shown.title != english.title
    assert shown.text != english.text
    assert "users/list" not in shown.text
    assert "call-sync" not in shown.text
    for value in params.values():
        shown_value = ", ".join(value) if isinstance(value, list) else str(value)
        if kind != "jobs.dead":
            assert shown_value in shown.text
    if kind in PLURALS[lang]:
        assert shown.text.startswith(PLURALS[lang][kind][n]), shown.text


@pytest.mark.parametrize("lang", ["uk", "ru"])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_repeat_counts_take_the_languages_plural_form(lang, n):
    with translation.override(lang):
        assert messages.repeat_text(n) == PLURALS[lang]["repeat"][n]


def test_an_unknown_code_shows_its_stored_text_under_a_generic_title():
    with translation.override("uk"):
        shown = messages.message_render(kind="new.kind", params={}, detail="plain words")
    assert shown.text == "plain words"
    assert shown.title == "Інтеграція Unitalk"


@pytest.mark.django_db
def test_banner_is_rendered_in_the_pages_language_with_the_detail_apart(client, portal):
    # given: a refused key, stored as a code with its parameters
    alerts.notification_raise(
        portal=portal,
        kind="unitalk.credentials_invalid",
        tag="unitalk:credentials-invalid",
        message=DETAIL,
        params={"key": "****ey99"},
    )
    users(portal)
    # when: an admin's page asks for the banners in Russian
    response = client.get(
        "/bitrix/actions/overview/", HTTP_X_APP_LANG="ru", **token(portal, admin=True)
    )
    # then
    banner = response.json()["banners"][0]
    assert banner["title"] == "Unitalk отклонил API-ключ"
    assert banner["message"].startswith("Unitalk не принял API-ключ ****ey99")
    assert banner["detail"] == DETAIL
    assert "users/list" not in banner["message"]
    assert "<details" in response.json()["banners_html"]


@pytest.mark.django_db
def test_existing_rows_get_their_parameters_from_the_old_text(portal):
    import importlib

    migration = importlib.import_module("integration.migrations.0003_notification_params")
    # given: rows as the app stored them before (English sentence, context)
    assert migration.params_from_text(
        "unitalk.credentials_invalid",
        "Unitalk refused the API key ****ey99. Calls are not synced until ...",
        {},
    ) == {"key": "****ey99"}
    assert migration.params_from_text(
        "unitalk.unmapped_lines",
        "Unitalk inner lines without a Bitrix24 user: 102.",
        {"lines": ["102"]},
    ) == {"lines": ["102"]}
    assert migration.params_from_text(
        "call.missed", "Missed call from 380671234567: please call back", {}
    ) == {"phone": "380671234567"}
    assert migration.params_from_text(
        "bitrix.install_refused", "Bitrix24 user 7, who is not an administrator, ...", {}
    ) == {"user": "7"}
    assert Notification.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lang", "words"), [("uk", "2 лінії Unitalk без користувача"), ("ru", "2 линии Unitalk без")]
)
def test_a_bitrix24_notice_is_written_in_the_portals_language(portal, lang, words):
    from integration.notifications import delivery

    # given: the portal's admins use the app in `lang`
    portal.lang = lang
    portal.save()
    row = alerts.notification_raise(
        portal=portal,
        kind="unitalk.unmapped_lines",
        tag="unitalk:unmapped-lines",
        message="lines without UF_PHONE_INNER: 101, 102",
        params={"lines": ["101", "102"]},
    )
    # when
    text = delivery.notification_text(notification=row)
    # then: translated, plural right, no field names
    assert words in text
    assert "UF_PHONE_INNER" not in text
