"""A reroute's path in the reader's language (docs/routing.md "Path"): rows store reason codes
and parameters (chain.py), never sentences, like the campaigns' reasons."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from integration.routing import chain
from integration.routing.models import Reroute, Step


def step_label(step: str) -> str:
    labels = {
        Step.OWN_LINE: _("own line"),
        Step.BACKUP_LINE: _("backup line"),
        Step.RESPONSIBLE: _("CRM responsible"),
        Step.DEPARTMENT: _("department colleague"),
        Step.DUTY_LINE: _("duty line"),
        Step.CALLBACK: _("callback task"),
    }
    return labels.get(step, step)  # type: ignore[call-overload]


def trigger_label(trigger: str) -> str:
    labels = {
        Reroute.Trigger.NO_LINE: _("no Unitalk line"),
        Reroute.Trigger.LINE_FAILING: _("line failing"),
        Reroute.Trigger.LINE_UNREACHABLE: _("the line did not ring"),
        Reroute.Trigger.REFUSED: _("Unitalk refused the call"),
        Reroute.Trigger.UNITALK_DOWN: _("Unitalk unavailable"),
    }
    return labels.get(trigger, trigger)  # type: ignore[call-overload]


def _who(hop: dict[str, Any]) -> str:
    return str(hop.get("name") or hop.get("user") or hop.get("line") or "—")


def hop_text(hop: dict[str, Any]) -> str:
    """One skipped or chosen step: "backup line: line 105 is mapped to nobody"."""
    why = hop.get("why")
    params = {"who": _who(hop), "line": hop.get("line") or "—", "state": hop.get("state") or ""}
    texts = {
        chain.WHY_OWN_FAILED: trigger_label(str(hop.get("trigger") or "")),
        chain.WHY_OFF: _("turned off"),
        chain.WHY_NO_BACKUP: _("no backup line set"),
        chain.WHY_UNMAPPED: _("line %(line)s is mapped to nobody") % params,
        chain.WHY_SELF: _("that is the caller"),
        chain.WHY_VISITED: _("%(who)s was already tried (loop)") % params,
        chain.WHY_UNAVAILABLE: _("%(who)s is not available (%(state)s)") % params,
        chain.WHY_MISSING: _("%(who)s is not a Bitrix24 user with a line any more") % params,
        chain.WHY_NO_RECORD: _("no CRM record with another responsible"),
        chain.WHY_NO_COLLEAGUE: _("no colleague of the department is available"),
        chain.WHY_NO_DUTY: _("no duty line set"),
        chain.WHY_UNITALK_DOWN: _("Unitalk unavailable"),
        chain.WHY_CHOSEN: _who(hop) if hop.get("step") != Step.CALLBACK else "",
    }
    text = texts.get(str(why), str(why))
    label = step_label(str(hop.get("step") or ""))
    return f"{label}: {text}" if text else label


def path_short(reroute: Reroute) -> str:
    """What a call list shows: "own line failed → Oleg Operator" / "… → callback task"."""
    first = _("own line failed (%(why)s)") % {"why": trigger_label(reroute.trigger)}
    if reroute.step == Step.CALLBACK or not reroute.step:
        last = step_label(Step.CALLBACK)
    else:
        last = reroute.to_name or str(reroute.to_user_id or reroute.to_line)
    return f"{first} → {last}"


def path_long(reroute: Reroute) -> list[str]:
    return [hop_text(hop) for hop in reroute.path or []]
