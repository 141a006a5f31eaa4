"""The filter and order of the universal CRM lists (`crm.item.list`, `crm.calllist.list`).

Prefixes as `api-reference/crm/universal/crm-item-list.md` lists them: `>=`, `>`, `<=`, `<`,
`@` (IN), `!@` (NOT IN), `%` (substring), `=%` / `%=` (LIKE with `%` in the value), `!%`,
`!=%` / `!%=`, `=`, `!=`, `!`; nested groups with `logic: OR` (docs/agents.md §2.2).

Field names go through a `resolve` callable that maps a name as the client sent it to the stored
name, or raises the method's own error for an unknown field (each list names it differently).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

#: Longest first, so `!=%` is not read as `!` + `=%`.
PREFIXES = ("!=%", "!%=", "=%", "%=", "!@", ">=", "<=", "!=", "!%", "@", ">", "<", "%", "=", "!")

Resolve = Callable[[str], str]


def split_key(key: str) -> tuple[str, str]:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return prefix, key[len(prefix) :]
    return "", key


def values(raw: Any) -> list[Any] | None:
    """An IN operand as a list (JSON list or a PHP array decoded from a form), else None."""
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict):
        return list(raw.values())
    return None


def norm(value: Any) -> Any:
    """A comparable form: booleans as Y/N, numbers as floats, ISO times as aware datetimes."""
    if value is True or value is False:
        return "Y" if value else "N"
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        pass
    if len(text) >= 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return text


def _like(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in pattern.split("%")]
    return re.compile("^" + ".*".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _ordered(a: Any, b: Any, op: str) -> bool:
    if a is None or b is None:
        return False
    if type(a) is not type(b):
        a, b = str(a), str(b)
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def compare(actual: Any, op: str, expected: Any) -> bool:
    """One condition. Multi-valued fields (a deal's `contactIds`) match if any value does."""
    if isinstance(actual, list) and op not in ("!", "!=", "!@"):
        return any(compare(one, op, expected) for one in actual) if actual else False
    if isinstance(actual, list):
        return not any(
            compare(one, {"!": "=", "!=": "=", "!@": "@"}[op], expected) for one in actual
        )
    listed = values(expected)
    if op in ("@", "!@") or (op in ("", "=", "!", "!=") and listed is not None):
        wanted = {norm(v) for v in (listed if listed is not None else [expected])}
        inside = norm(actual) in wanted
        return inside if op in ("@", "", "=") else not inside
    if op in ("", "="):
        return norm(actual) == norm(expected)
    if op in ("!", "!="):
        return norm(actual) != norm(expected)
    if op in (">", ">=", "<", "<="):
        return _ordered(norm(actual), norm(expected), op)
    text = "" if actual is None else str(actual)
    if op in ("%", "!%"):
        found = str(expected).lower() in text.lower()
        return found if op == "%" else not found
    found = bool(_like(str(expected)).match(text))
    return found if op in ("=%", "%=") else not found


def check(flt: Any, resolve: Resolve, invalid: Callable[[str], Exception]) -> None:
    """Resolve every field name of `flt` now, so a bad filter fails even on an empty list."""
    for key, value in _entries(flt):
        if isinstance(value, dict) and _is_group(key):
            check(value, resolve, invalid)
        elif key.lower() != "logic":
            op, name = split_key(key)
            resolve(name)
            if op in ("@", "!@") and values(value) is None:
                raise invalid(name)


def match(record: dict[str, Any], flt: Any, resolve: Resolve) -> bool:
    """Whether `record` (stored names) passes `flt` (client names); AND unless `logic: OR`."""
    results = []
    logic = "AND"
    for key, value in _entries(flt):
        if key.lower() == "logic":
            logic = str(value).upper()
        elif isinstance(value, dict) and _is_group(key):
            results.append(match(record, value, resolve))
        else:
            op, name = split_key(key)
            results.append(compare(record.get(resolve(name)), op, value))
    return any(results) if logic == "OR" else all(results)


def _is_group(key: str) -> bool:
    # Nested conditions come under numeric keys ("0": {"logic": "OR", ...}), crm-item-list.md.
    return key.isdigit()


def _entries(flt: Any) -> list[tuple[str, Any]]:
    if isinstance(flt, list):  # a filter of groups only, decoded from a form, is a list
        return [(str(i), v) for i, v in enumerate(flt)]
    if isinstance(flt, dict):
        return [(str(k), v) for k, v in flt.items()]
    return []


def sort_key(value: Any) -> tuple[int, Any]:
    normed = norm(value[0] if isinstance(value, list) and value else value)
    if normed is None or normed == []:
        return (0, 0)
    if isinstance(normed, float):
        return (1, normed)
    if isinstance(normed, datetime):
        return (2, normed.timestamp())
    return (3, str(normed))


def order_records(
    records: list[dict[str, Any]],
    order: dict[str, Any],
    resolve: Resolve,
    bad_direction: Callable[[str, str], Exception],
) -> list[dict[str, Any]]:
    """Sort by each `field: ASC|DESC` of `order` in turn (stable sorts, last key first)."""
    steps = []
    for name, direction in order.items():
        field = resolve(str(name))
        upper = str(direction).upper()
        if upper not in ("ASC", "DESC"):
            raise bad_direction(str(name), str(direction))
        steps.append((field, upper == "DESC"))
    for field, descending in reversed(steps):
        records = sorted(records, key=lambda r: sort_key(r.get(field)), reverse=descending)
    return records
