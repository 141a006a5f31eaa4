"""Reasons stored on campaigns, agents and items (English, for logs and the API) shown in the
page's language. Each stored wording has one pattern here; anything else is shown as stored."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import gettext as _

_Label = Callable[[re.Match[str]], str]

_PATTERNS: list[tuple[re.Pattern[str], _Label]] = [
    (re.compile(r"^no phone number$"), lambda m: _("no phone number")),
    (
        re.compile(r"^not a phone number: (.*)$"),
        lambda m: _("not a phone number: %(v)s") % {"v": m[1]},
    ),
    (
        re.compile(r"^a phone number has 10-15 digits, (.*) has (\d+)$"),
        lambda m: _("a phone number has 10-15 digits, %(v)s has %(n)s") % {"v": m[1], "n": m[2]},
    ),
    (re.compile(r"^on the do-not-call list$"), lambda m: _("on the do-not-call list")),
    (re.compile(r"^deleted in Bitrix24$"), lambda m: _("deleted in Bitrix24")),
    (re.compile(r"^moved to stage (.*)$"), lambda m: _("moved to stage %(v)s") % {"v": m[1]}),
    (re.compile(r"^Bitrix24 refused: (.*)$"), lambda m: _("Bitrix24 refused: %(v)s") % {"v": m[1]}),
    (
        re.compile(r"^max attempts reached \((\d+)/(\d+)\)$"),
        lambda m: _("max attempts reached (%(n)s/%(max)s)") % {"n": m[1], "max": m[2]},
    ),
    (re.compile(r"^max attempts reached$"), lambda m: _("max attempts reached")),
    (re.compile(r"^campaign stopped$"), lambda m: _("campaign stopped")),
    (re.compile(r"^agent did not pick up$"), lambda m: _("agent did not pick up")),
    (re.compile(r"^could not be dialled$"), lambda m: _("could not be dialled")),
    (
        re.compile(r"^Bitrix24 re-check failed: (.*)$"),
        lambda m: _("Bitrix24 re-check failed: %(v)s") % {"v": m[1]},
    ),
    (re.compile(r"^paused by a manager$"), lambda m: _("paused by a manager")),
    (re.compile(r"^stopped by a manager$"), lambda m: _("stopped by a manager")),
    (re.compile(r"^paused by the agent$"), lambda m: _("paused by the agent")),
    (
        re.compile(r"^every number has a final outcome$"),
        lambda m: _("every number has a final outcome"),
    ),
    (
        re.compile(r"^the source had no numbers to dial$"),
        lambda m: _("the source had no numbers to dial"),
    ),
    (
        re.compile(r"^the numbers could not be loaded$"),
        lambda m: _("the numbers could not be loaded"),
    ),
    (
        re.compile(r"^no agent available for (\d+) min$"),
        lambda m: _("no agent available for %(n)s min") % {"n": m[1]},
    ),
    (
        re.compile(r"^did not pick up (\d+) calls in a row$"),
        lambda m: _("did not pick up %(n)s calls in a row") % {"n": m[1]},
    ),
    # Callbacks (integration/routing/callbacks.py, campaigns/callbacks.py).
    (
        re.compile(r"^user (\d+) was deleted in Bitrix24$"),
        lambda m: _("user %(n)s was deleted in Bitrix24") % {"n": m[1]},
    ),
    (
        re.compile(r"^user (\d+) has no Unitalk line$"),
        lambda m: _("user %(n)s has no Unitalk line") % {"n": m[1]},
    ),
    (re.compile(r"^no number to call back$"), lambda m: _("no number to call back")),
    (re.compile(r"^resolved: (.*)$"), lambda m: _("resolved: %(v)s") % {"v": m[1]}),
]


def reason_label(text: str) -> str:
    """`text` in the active language when it is one of the stored wordings."""
    for pattern, label in _PATTERNS:
        match = pattern.match(text or "")
        if match:
            return label(match)
    return text
