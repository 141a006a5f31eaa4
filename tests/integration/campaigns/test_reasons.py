"""Every reason the dialer stores is shown translated (campaigns/reasons.py)."""

from __future__ import annotations

import pytest
from django.utils import translation

from integration.campaigns.models import Attempt
from integration.campaigns.phones import PhoneInvalid, phone_normalise
from integration.campaigns.reasons import reason_label


def _phone_reason(raw: str) -> str:
    with pytest.raises(PhoneInvalid) as caught:
        phone_normalise(raw)
    return str(caught.value)


@pytest.mark.parametrize("lang", ["uk", "ru"])
def test_stored_reasons_read_in_the_pages_language(lang):
    stored = [
        _phone_reason(""),
        _phone_reason("call me"),
        _phone_reason("12345"),
        "on the do-not-call list",
        "deleted in Bitrix24",
        "moved to stage WON",
        "Bitrix24 refused: ACCESS_DENIED",
        "max attempts reached (3/3)",
        "max attempts reached",
        "campaign stopped",
        str(Attempt.Outcome.OPERATOR_NOANSWER.label),
        str(Attempt.Outcome.DIAL_FAILED.label),
        "paused by a manager",
        "stopped by a manager",
        "paused by the agent",
        "every number has a final outcome",
        "the source had no numbers to dial",
        "the numbers could not be loaded",
        "no agent available for 10 min",
        "did not pick up 2 calls in a row",
    ]
    with translation.override(lang):
        untranslated = [text for text in stored if reason_label(text) == text]
    assert untranslated == []


def test_unknown_text_is_shown_as_stored():
    with translation.override("uk"):
        assert reason_label("Unitalk said no") == "Unitalk said no"


@pytest.mark.parametrize(
    "raw",
    ["\u0660\u0665\u0660\u0661\u0661\u0661\u0662\u0662\u0663\u0663", "+380５0111２233"],  # noqa: RUF001
)
def test_look_alike_digits_are_not_a_phone_number(raw):
    # else "٠٥٠١١١٢٢٣٣" passed as a number other than 0501112233: no dedupe, no do-not-call match
    assert _phone_reason(raw) == f"not a phone number: {raw[:32]!r}"
    assert phone_normalise("0501112233") == "380501112233"
    assert phone_normalise("+380\u00a050\u00a0111 22 33") == "380501112233"
