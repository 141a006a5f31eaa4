"""The routing settings an admin saves, validated as a whole (docs/routing.md "Settings"):
a bad chain is refused with a 400 naming the field and the fix, and nothing is half-stored.

Refused: unknown or repeated steps; the callback task off or not last; every other step off;
a duty or backup line that no user has (an unmapped line); a backup line that is the user's
own; an override for a user who is not a Bitrix24 user with a line (deleted, or never mapped);
backup lines that form a loop (A → B → A). What was stored before a mapping changed is still
evaluated safely: the chain skips such a step with its reason (chain.py).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from bitrixapp.models import Portal
from integration.agents.models import AgentState
from integration.core import inputs
from integration.routing.facts import policy_get
from integration.routing.models import RoutingOverride, RoutingPolicy, Step
from integration.unitalk.models import OperatorMapping

Errors = dict[str, str]


def _steps_parse(raw: Any, field: str, errors: Errors) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        errors[field] = _("Give the steps as a list.")
        return []
    steps: list[dict[str, Any]] = []
    for entry in raw[:20]:
        step = entry.get("step") if isinstance(entry, dict) else None
        if step not in Step.values:
            errors[field] = _("Unknown step %(step)s.") % {"step": str(step)[:40]}
            return []
        if any(s["step"] == step for s in steps):
            errors[field] = _("The step %(step)s is listed twice.") % {"step": step}
            return []
        steps.append({"step": step, "on": entry.get("on", True) is True})
    if steps[-1] != {"step": Step.CALLBACK, "on": True}:
        errors[field] = _("The callback task must be the last step and stay on.")
    elif len(steps) != len(Step.values):
        errors[field] = _("List every step once (turn a step off instead of leaving it out).")
    elif not any(s["on"] for s in steps[:-1]):
        errors[field] = _(
            "Every step but the callback task is off: nobody would ever be offered the call. "
            "Turn at least one step on."
        )
    return steps


def _line(raw: Any, field: str, lines: dict[str, int], errors: Errors) -> str:
    line = str(raw or "").strip()[:32]
    if line and line not in lines:
        errors[field] = _(
            "Line %(line)s is not mapped to any user. Map it under Users and Unitalk lines in "
            "Settings, or choose another line."
        ) % {"line": line}
    return line


def policy_save(*, portal: Portal, data: dict[str, Any]) -> tuple[RoutingPolicy | None, Errors]:
    """Validate and store the portal's chain. Returns (policy, {}) or (None, errors)."""
    errors: Errors = {}
    lines = _lines(portal)
    steps = _steps_parse(data.get("steps"), "steps", errors)
    mode = data.get("mode", RoutingPolicy.Mode.ASK_FIRST)
    if mode not in RoutingPolicy.Mode.values:
        errors["mode"] = _("Choose ask first or dial.")
    duty = _line(data.get("duty_line"), "duty_line", lines, errors)
    try:
        minutes = inputs.parse_int(
            data.get("escalate_after_min", 30), field="escalate_after_min", minimum=1, maximum=1440
        )
    except inputs.InputError:
        errors["escalate_after_min"] = _("Give the minutes as a whole number from 1 to 1440.")
        minutes = 30
    enabled = data.get("enabled", True) is True
    in_dialer = data.get("callbacks_in_dialer", True)
    if not isinstance(in_dialer, bool):
        errors["callbacks_in_dialer"] = _(
            "Turn callbacks in the autodialer on or off (true or false)."
        )
    if errors:
        return None, errors
    with transaction.atomic():
        policy = policy_get(portal=portal)
        policy.steps, policy.mode, policy.duty_line = steps, mode, duty
        policy.escalate_after_min, policy.enabled = minutes, enabled
        policy.callbacks_in_dialer = in_dialer is True
        policy.save()
    return policy, {}


def _lines(portal: Portal) -> dict[str, int]:
    return {
        m.line: m.bitrix_user_id for m in OperatorMapping.objects.filter(portal=portal) if m.line
    }


def _loop(start: int, backups: dict[int, str], lines: dict[str, int]) -> list[int]:
    """The users on a backup-line cycle through `start`, [] when there is none."""
    seen = [start]
    current = start
    while True:
        owner = lines.get(backups.get(current, ""))
        if owner is None:
            return []
        if owner == start:
            return [*seen, owner]
        if owner in seen:
            return []  # a cycle further on, not through this user: theirs to fix
        seen.append(owner)
        current = owner


def override_save(
    *, portal: Portal, user_id: Any, data: dict[str, Any]
) -> tuple[RoutingOverride | None, Errors]:
    """Validate and store one user's backup line and steps (`steps` null: the portal's).

    Returns (override, {}), (None, errors) with nothing stored, or (None, {}) when neither a
    backup line nor own steps is given: the override is removed and the portal's chain applies.
    """
    errors: Errors = {}
    lines = _lines(portal)
    try:
        uid = inputs.parse_int(user_id, field="user_id", minimum=1, maximum=inputs.INT64_MAX)
    except inputs.InputError:
        return None, {"user_id": _("Give the Bitrix24 user as a number.")}
    own = next((line for line, owner in lines.items() if owner == uid), None)
    agent = AgentState.objects.filter(portal=portal, bitrix_user_id=uid).first()
    if own is None or (agent is not None and agent.user_missing):
        errors["user_id"] = _(
            "User %(user)s is not a Bitrix24 user with a Unitalk line (deleted, or no line "
            "mapped). Map a line first, or remove the override."
        ) % {"user": uid}
    backup = _line(data.get("backup_line"), "backup_line", lines, errors)
    if backup and backup == own:
        errors["backup_line"] = _("The backup line must not be the user's own line.")
    steps = None
    if data.get("steps") is not None:
        steps = _steps_parse(data.get("steps"), "steps", errors)
    if errors:
        return None, errors
    if not backup and steps is None:
        # Nothing of the user's own is left: they follow the portal's chain (docs/routing.md
        # "Pages"), so no row says otherwise.
        override_delete(portal=portal, user_id=uid)
        return None, {}
    with transaction.atomic():
        backups = {
            o.bitrix_user_id: o.backup_line
            for o in RoutingOverride.objects.select_for_update().filter(portal=portal)
        }
        backups[uid] = backup
        cycle = _loop(uid, backups, lines) if backup else []
        if cycle:
            names = " → ".join(str(u) for u in cycle)
            return None, {
                "backup_line": _(
                    "These backup lines form a loop (users %(loop)s): a call would go round in "
                    "a circle. Choose another backup line."
                )
                % {"loop": names}
            }
        override, _created = RoutingOverride.objects.update_or_create(
            portal=portal, bitrix_user_id=uid, defaults={"backup_line": backup, "steps": steps}
        )
    return override, {}


def override_delete(*, portal: Portal, user_id: int) -> int:
    deleted, _n = RoutingOverride.objects.filter(portal=portal, bitrix_user_id=user_id).delete()
    return deleted
