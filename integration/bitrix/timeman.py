"""Time tracking, user presence and departments for agent status (docs/agents.md §1.1, §1.4).

Reads are batched: one `batch` of up to 50 per-user commands is one slot of the portal's leaky
bucket (docs/bitrix24.md §2.5, §4.1). Per-user failures come back as data, never raised, so one
deleted user cannot fail the poll of the others; whole-request failures raise like
`client.call`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bitrixapp.models import Portal
from integration.bitrix import batch, client

MAX_COMMANDS = batch.MAX_COMMANDS

#: Error codes meaning the time-tracking module or the app's `timeman` scope is missing
#: (docs/agents.md §8 q.7: assumed, UNCONFIRMED on a live portal).
MODULE_MISSING_CODES = frozenset({"insufficient_scope", "ERROR_METHOD_NOT_FOUND"})
#: timeman.* answer for an unknown user: HTTP 400 with an empty code (docs/agents.md §1.1).
USER_NOT_FOUND = "User not found"


@dataclass
class PerUser:
    """Answers keyed by Bitrix24 user id; `errors` holds Bitrix24's own error objects."""

    results: dict[int, Any] = field(default_factory=dict)
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    def module_missing(self) -> bool:
        return bool(self.errors) and all(
            str(e.get("error")) in MODULE_MISSING_CODES for e in self.errors.values()
        )


def _per_user(portal: Portal, method: str, user_ids: Iterable[int], params: Any) -> PerUser:
    ids = [int(u) for u in user_ids]
    commands = {f"u{uid}": (method, params(uid)) for uid in ids}
    answer = batch.batch(portal, commands)
    out = PerUser()
    for uid in ids:
        key = f"u{uid}"
        if key in answer.errors:
            out.errors[uid] = answer.errors[key]
        elif key in answer.results:
            out.results[uid] = answer.results[key]
        else:  # missing from every map: treat as an unknown answer, not a crash
            out.errors[uid] = {"error": "MISSING", "error_description": "no answer in batch"}
    return out


def status_many(portal: Portal, user_ids: Iterable[int]) -> PerUser:
    """`timeman.status` for each user: {STATUS, TIME_START, ...} (docs/agents.md §1.1)."""
    return _per_user(portal, "timeman.status", user_ids, lambda uid: {"USER_ID": uid})


def settings_many(portal: Portal, user_ids: Iterable[int]) -> PerUser:
    """`timeman.settings` for each user: {UF_TIMEMAN, UF_TM_FREE, ...}."""
    return _per_user(portal, "timeman.settings", user_ids, lambda uid: {"USER_ID": uid})


def users_many(portal: Portal, user_ids: Iterable[int]) -> PerUser:
    """`user.get` by ID for each user: a list with the user, or [] when deleted (§7.4).

    Not filtered on ACTIVE: a deactivated user must be seen as such (docs/agents.md §1.4).
    """
    return _per_user(portal, "user.get", user_ids, lambda uid: {"ID": uid})


def department_heads(portal: Portal, department_ids: Iterable[int]) -> dict[int, int]:
    """Department id → its head's user id (`department.get` UF_HEAD); unknown ones left out."""
    ids = sorted({int(d) for d in department_ids if int(d) > 0})
    if not ids:
        return {}
    answer = batch.batch(portal, {f"d{d}": ("department.get", {"ID": d}) for d in ids})
    heads: dict[int, int] = {}
    for dept in ids:
        rows = answer.results.get(f"d{dept}")
        for row in rows if isinstance(rows, list) else []:
            try:
                head = int(row.get("UF_HEAD") or 0)
            except (TypeError, ValueError, AttributeError):
                continue
            if head > 0:
                heads[dept] = head
    return heads


def day_pause(portal: Portal, *, user_id: int) -> Any:
    """`timeman.pause` (only when an admin opted in, docs/agents.md §5.1 item 4)."""
    return client.call(portal, "timeman.pause", {"USER_ID": int(user_id)})


def day_open(portal: Portal, *, user_id: int) -> Any:
    """`timeman.open` without TIME: opens or resumes today's day. The app never closes one."""
    return client.call(portal, "timeman.open", {"USER_ID": int(user_id)})
