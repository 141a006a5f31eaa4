"""Reads for the routing page (docs/routing.md "Pages"), in the active language."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from bitrixapp.models import Portal
from integration.agents.models import AgentState
from integration.routing import reasons
from integration.routing.facts import policy_get, steps_of
from integration.routing.models import Reroute, RoutingOverride, RoutingPolicy
from integration.unitalk.models import OperatorMapping

RECENT = 50


def _steps_labelled(raw: Any) -> list[dict[str, Any]]:
    return [
        {"step": step, "on": on, "label": reasons.step_label(step)} for step, on in steps_of(raw)
    ]


def policy_dict(*, portal: Portal) -> dict[str, Any]:
    policy = policy_get(portal=portal)
    return {
        "enabled": policy.enabled,
        "mode": policy.mode,
        "duty_line": policy.duty_line,
        "escalate_after_min": policy.escalate_after_min,
        "callbacks_in_dialer": policy.callbacks_in_dialer,
        "steps": _steps_labelled(policy.steps),
        "modes": [
            (RoutingPolicy.Mode.ASK_FIRST, _("Ask the next person first (a notice and a to-do)")),
            (RoutingPolicy.Mode.DIAL, _("Dial from the next person's line at once")),
        ],
    }


def lines_list(*, portal: Portal) -> list[dict[str, Any]]:
    names = dict(AgentState.objects.filter(portal=portal).values_list("bitrix_user_id", "name"))
    return [
        {"line": m.line, "user_id": m.bitrix_user_id, "name": names.get(m.bitrix_user_id) or m.name}
        for m in OperatorMapping.objects.filter(portal=portal).order_by("line")
    ]


def overrides_list(*, portal: Portal) -> list[dict[str, Any]]:
    return [
        {
            "user_id": o.bitrix_user_id,
            "backup_line": o.backup_line,
            "own_steps": o.steps is not None,
            "steps": _steps_labelled(o.steps) if o.steps is not None else None,
        }
        for o in RoutingOverride.objects.filter(portal=portal)
    ]


def override_rows(*, portal: Portal) -> list[dict[str, Any]]:
    """One row per mapped line for the admins' per-user chains: the user's backup line and
    the steps their editor starts from (their own, else the portal's), docs/routing.md "Pages"."""
    portal_steps = _steps_labelled(policy_get(portal=portal).steps)
    overrides = {o["user_id"]: o for o in overrides_list(portal=portal)}
    rows = []
    for line in lines_list(portal=portal):
        mine = overrides.get(line["user_id"]) or {}
        rows.append(
            line
            | {
                "backup_line": mine.get("backup_line", ""),
                "own_steps": bool(mine.get("own_steps")),
                "steps": mine.get("steps") or portal_steps,
                "has_override": bool(mine),
            }
        )
    return rows


def reroute_dict(reroute: Reroute, names: dict[int, str] | None = None) -> dict[str, Any]:
    names = names or {}
    return {
        "id": reroute.pk,
        "when": reroute.created_at,
        "phone": reroute.phone_number,
        "from_user": names.get(reroute.from_user_id or 0) or reroute.from_user_id,
        "to_user": reroute.to_user_id,
        "state": reroute.state,
        "state_label": Reroute.State(reroute.state).label if reroute.state else "",
        "path": reasons.path_short(reroute),
        "hops": reasons.path_long(reroute),
        "can_dial": reroute.state == Reroute.State.ASKED and reroute.dial_sync_id is None,
    }


def reroutes_recent(*, portal: Portal, user_id: int | None = None) -> list[dict[str, Any]]:
    rows = Reroute.objects.filter(portal=portal)
    if user_id is not None:
        rows = rows.filter(to_user_id=user_id)
    names = dict(AgentState.objects.filter(portal=portal).values_list("bitrix_user_id", "name"))
    return [reroute_dict(r, names) for r in rows[:RECENT]]
