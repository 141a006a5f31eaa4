"""Phone numbers as campaigns compare them: digits with the country code (E.164 without "+").

Dedupe within a campaign and the do-not-call list both compare these. A national number starting
with a single 0 is taken as Ukrainian (the product's market, Unitalk is a Ukrainian carrier):
0501112233 → 380501112233. Anything else that is not 10-15 digits is refused with a reason.
"""

from __future__ import annotations

import re

DEFAULT_COUNTRY_CODE = "38"
# ASCII digits (\d alone also takes Arabic-Indic and fullwidth ones, which no dedupe matches);
# any space, a no-break space from a spreadsheet too.
_ALLOWED = re.compile(r"^[0-9\s()+\-./]+$")


class PhoneInvalid(ValueError):
    """The number cannot be dialled; `str(exc)` is the reason shown on the item."""


def phone_normalise(raw: str) -> str:
    """The comparable form of `raw`. Raises PhoneInvalid with a human reason."""
    text = (raw or "").strip()
    if not text:
        raise PhoneInvalid("no phone number")
    if not _ALLOWED.match(text):
        raise PhoneInvalid(f"not a phone number: {text[:32]!r}")
    digits = re.sub(r"[^0-9]", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    elif not text.startswith("+") and len(digits) == 10 and digits.startswith("0"):
        digits = DEFAULT_COUNTRY_CODE + digits
    if not 10 <= len(digits) <= 15:
        raise PhoneInvalid(f"a phone number has 10-15 digits, {text[:32]!r} has {len(digits)}")
    return digits
