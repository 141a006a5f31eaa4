"""What people read about a problem: a message code (the row's `kind`) and its parameters.

Rows store the code and `params`, never the sentence, so a banner, a Bitrix24 notice or an
e-mail is written in the reader's language when it is read, with proper plural forms (uk and
ru have three, docs/pages.md "Languages"). The row's `message` keeps the technical detail (job
kind, method, provider error) for logs and the "details" toggle only.

A code nobody registered (a new part of the app raising its own kind) falls back to a generic
title and the stored text, so nothing is ever shown blank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

#: Which page fixes the problem ("" = nothing in the app can).
FIX_SETTINGS = "settings"
FIX_FAILED = "failed"
FIX_AGENTS = "agents"
FIX_ROUTING = "routing"
FIX_CAMPAIGNS = "campaigns"


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    fix: str = ""


def _n(params: dict[str, Any], key: str = "n") -> int:
    try:
        return max(int(params.get(key) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _credentials_invalid(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("Unitalk refused the API key"),
        _(
            "Unitalk did not accept the API key %(key)s. Calls are not synced until you save "
            "a valid key in Settings; nothing is lost meanwhile."
        )
        % {"key": p.get("key") or "—"},
        FIX_SETTINGS,
    )


def _unmapped_lines(p: dict[str, Any]) -> Rendered:
    lines = [str(line) for line in p.get("lines") or []]
    n = len(lines)
    return Rendered(
        _("Unitalk lines without a Bitrix24 user"),
        ngettext(
            "%(n)d Unitalk line has no Bitrix24 user: %(lines)s. Enter the internal phone "
            "number in the employee's Bitrix24 profile, or map the line in Settings.",
            "%(n)d Unitalk lines have no Bitrix24 user: %(lines)s. Enter the internal phone "
            "number in each employee's Bitrix24 profile, or map the lines in Settings.",
            n,
        )
        % {"n": n, "lines": ", ".join(lines[:20]) + (" …" if n > 20 else "")},
        FIX_SETTINGS,
    )


def _bitrix_auth(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("The portal suspended the app"),
        _(
            "Bitrix24 stopped accepting the app's access. Open the app as a Bitrix24 "
            "administrator or reinstall it; calls are not saved in the CRM until then."
        ),
    )


def _bitrix_install(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("The app installation did not finish"),
        _("The app could not finish installing on Bitrix24. Reinstall it from the Market."),
    )


def _install_refused(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("Someone tried to reinstall the app"),
        _(
            "Bitrix24 user %(user)s, who is not an administrator, tried to install or "
            "reinstall the app. Nothing was changed."
        )
        % {"user": p.get("user") or "?"},
    )


def _jobs_dead(p: dict[str, Any]) -> Rendered:
    n = _n(p) or 1
    return Rendered(
        _("Some work failed for good"),
        ngettext(
            "%(n)d task could not be done even after several tries. See Failed calls and "
            "retry it there.",
            "%(n)d tasks could not be done even after several tries. See Failed calls and "
            "retry them there.",
            n,
        )
        % {"n": n},
        FIX_FAILED,
    )


def _call_missed(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("Missed call"),
        _("Missed call from %(phone)s. Please call back.") % {"phone": p.get("phone") or "?"},
        FIX_FAILED,
    )


def _call_dial_failed(p: dict[str, Any]) -> Rendered:
    phone = p.get("phone") or "?"
    if p.get("reason"):
        # A click that failed (issue 21 item 1): why, and the one-click "Try again".
        text = _(
            "Your call to %(number)s could not be placed: %(reason)s. Press “Try again” in the"
            " call's Unitalk tab or on the Failed calls page to dial it now."
        ) % {"number": phone, "reason": p["reason"]}
    else:
        text = _("Your call to %(phone)s could not be placed. Open Failed calls to try again.") % {
            "phone": phone
        }
    return Rendered(_("Call not placed"), text, FIX_FAILED)


def _call_crm_sync_failed(p: dict[str, Any]) -> Rendered:
    return Rendered(
        _("Call not saved in the CRM"),
        _("The call with %(phone)s could not be saved in Bitrix24. Open Failed calls to retry it.")
        % {"phone": p.get("phone") or "?"},
        FIX_FAILED,
    )


def _agent_sync_failed(p: dict[str, Any]) -> Rendered:
    """Told to the agent (no `name`) and to their manager (`name` of the agent)."""
    if p.get("name"):
        text = _(
            "The status of %(name)s could not be sent to Unitalk, so the autodialer skips them "
            "until it works again. The app keeps trying; see Agents."
        ) % {"name": p["name"]}
    else:
        text = _(
            "Your status could not be sent to Unitalk, so the autodialer will not call you "
            "until it works again. The app keeps trying."
        )
    return Rendered(_("Agent status sync failed"), text, FIX_AGENTS)


def _agent_poll_failed(p: dict[str, Any]) -> Rendered:
    n = _n(p)
    return Rendered(
        _("Agent status could not be read"),
        ngettext(
            "Bitrix24 did not give the agents' work-day status %(n)d time in a row; the "
            "autodialer gives agents no new calls until it does.",
            "Bitrix24 did not give the agents' work-day status %(n)d times in a row; the "
            "autodialer gives agents no new calls until it does.",
            n,
        )
        % {"n": n},
        FIX_AGENTS,
    )


def _routing_why(p: dict[str, Any]) -> str:
    whys = {
        "no_line": _("you have no Unitalk line"),
        "line_failing": _("your Unitalk line is failing"),
        "line_unreachable": _("your Unitalk line did not ring"),
        "refused": _("Unitalk refused the call"),
        "unitalk_down": _("Unitalk is unavailable"),
    }
    return whys.get(str(p.get("why") or ""), _("your Unitalk line is unavailable"))


def _routing_rerouted(p: dict[str, Any]) -> Rendered:
    """Told to the caller at once (docs/routing.md): who takes their call instead."""
    values = {"why": _routing_why(p), "name": p.get("name") or "?", "phone": p.get("phone") or "?"}
    if p.get("mode") == "dial":
        text = _("%(why)s: %(name)s is calling %(phone)s from their line now.") % values
    else:
        text = _("%(why)s: %(name)s will call %(phone)s; they have been asked.") % values
    return Rendered(_("Call handed to a colleague"), text[:1].upper() + text[1:], "")


def _routing_asked(p: dict[str, Any]) -> Rendered:
    """Told to the next person (ask-first): one click on Routing → Calls for you dials it."""
    return Rendered(
        _("Please call a client"),
        _(
            "%(caller)s could not call %(phone)s. Please call the client: open Unitalk → "
            "Routing and press “Call now”, or click the number in the CRM."
        )
        % {"caller": p.get("caller") or "?", "phone": p.get("phone") or "?"},
        FIX_ROUTING,
    )


def _routing_callback(p: dict[str, Any]) -> Rendered:
    text = _(
        "%(why)s and nobody can take %(phone)s now: a callback task was created. You can also "
        "call from your mobile."
    ) % {"why": _routing_why(p), "phone": p.get("phone") or "?"}
    return Rendered(_("Callback task created"), text[:1].upper() + text[1:], FIX_FAILED)


def _routing_unitalk_down(p: dict[str, Any]) -> Rendered:
    if p.get("phone"):
        text = _("Unitalk unavailable; a callback task was created for %(phone)s.") % {
            "phone": p["phone"]
        }
    else:
        text = _(
            "Unitalk unavailable: clicks to call cannot be dialled now. Each one is told at once "
            "and waits on Failed calls to be tried again. Check the Unitalk key in Settings."
        )
    return Rendered(_("Unitalk unavailable"), text, FIX_SETTINGS)


def _routing_escalated(p: dict[str, Any]) -> Rendered:
    n = _n(p)
    return Rendered(
        _("Callback still open"),
        ngettext(
            "Nobody has called %(phone)s back for %(n)d minute (owner: %(name)s). Please see "
            "that someone calls.",
            "Nobody has called %(phone)s back for %(n)d minutes (owner: %(name)s). Please see "
            "that someone calls.",
            n,
        )
        % {"phone": p.get("phone") or "?", "n": n, "name": p.get("name") or "?"},
        FIX_FAILED,
    )


def _campaign_agent_paused(p: dict[str, Any]) -> Rendered:
    """Told to the agent (no `name`) and to the campaign's manager (`name` of the agent)."""
    n = _n(p)
    values = {"n": n, "campaign": p.get("campaign") or "?", "name": p.get("name") or "?"}
    if p.get("name"):
        text = ngettext(
            "%(name)s did not pick up %(n)d call in a row, so the campaign “%(campaign)s” "
            "gives them no more numbers. They resume on the campaign's page.",
            "%(name)s did not pick up %(n)d calls in a row, so the campaign “%(campaign)s” "
            "gives them no more numbers. They resume on the campaign's page.",
            n,
        )
    else:
        text = ngettext(
            "You did not pick up %(n)d call in a row, so the campaign “%(campaign)s” gives you "
            "no more numbers. Press “Resume me” on the campaign's page when you are ready.",
            "You did not pick up %(n)d calls in a row, so the campaign “%(campaign)s” gives you "
            "no more numbers. Press “Resume me” on the campaign's page when you are ready.",
            n,
        )
    return Rendered(_("Paused in a campaign"), text % values, FIX_CAMPAIGNS)


def _campaign_auto_paused(p: dict[str, Any]) -> Rendered:
    n = _n(p)
    return Rendered(
        _("Campaign paused itself"),
        ngettext(
            "No agent was available for %(n)d minute, so the campaign “%(campaign)s” paused "
            "itself. Start it again on the Campaigns page when agents are back.",
            "No agent was available for %(n)d minutes, so the campaign “%(campaign)s” paused "
            "itself. Start it again on the Campaigns page when agents are back.",
            n,
        )
        % {"n": n, "campaign": p.get("campaign") or "?"},
        FIX_CAMPAIGNS,
    )


#: Every code a stored message may have. tests/pages/test_messages.py renders each in uk/ru.
MESSAGES: dict[str, Callable[[dict[str, Any]], Rendered]] = {
    "unitalk.credentials_invalid": _credentials_invalid,
    "unitalk.unmapped_lines": _unmapped_lines,
    "bitrix.auth": _bitrix_auth,
    "bitrix.install": _bitrix_install,
    "bitrix.install_refused": _install_refused,
    "jobs.dead": _jobs_dead,
    "call.missed": _call_missed,
    "call.dial_failed": _call_dial_failed,
    "call.crm_sync_failed": _call_crm_sync_failed,
    "agents.sync_failed": _agent_sync_failed,
    "agents.poll_failed": _agent_poll_failed,
    "routing.rerouted": _routing_rerouted,
    "routing.asked": _routing_asked,
    "routing.callback": _routing_callback,
    "routing.unitalk_down": _routing_unitalk_down,
    "routing.escalated": _routing_escalated,
    "campaign.agent_paused": _campaign_agent_paused,
    "campaign.auto_paused": _campaign_auto_paused,
}


def message_render(*, kind: str, params: dict[str, Any], detail: str = "") -> Rendered:
    """The message in the active language; an unknown code shows its stored text."""
    render = MESSAGES.get(kind)
    if render is None:
        return Rendered(_("Unitalk integration"), detail)
    return render(params or {})


def repeat_text(count: int) -> str:
    """ "(2 times)" with the language's plural form; empty for a first occurrence."""
    if count <= 1:
        return ""
    return ngettext("%(n)d time", "%(n)d times", count) % {"n": count}


def notification_render(row: Any, *, lang: str | None = None) -> Rendered:
    """A `Notification` as its reader sees it (in `lang`, or the active language)."""
    if lang is None:
        return message_render(kind=row.kind, params=row.params, detail=row.message)
    with translation.override(lang):
        return message_render(kind=row.kind, params=row.params, detail=row.message)
