"""The one way numbers and JSON from outside become Python values (docs/security.md).

Everything that arrives from a request, an event, a webhook or a job payload is parsed here:

- `parse_int` accepts an int (never a bool or a float) or a string of ASCII digits, within a
  bounded range. `str.isdigit()` is not enough: it says yes to "²" and "٣", which `int()` then
  refuses, and to 5,000-digit strings, which `int()` refuses too (Python's 4,300-digit limit)
  or which overflow a database column.
- `parse_json` refuses bodies nested deeper than `MAX_JSON_DEPTH` before decoding, so a body
  of two thousand "[" is a clear refusal, not a RecursionError.

Both raise `InputError`, which names the field: doors answer it with 400, jobs dead-letter it
as a validation failure (it is a PermanentError, so the runner gives up without a traceback).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from integration.core.errors import ValidationError

#: Largest value of a 32-bit signed column (PositiveIntegerField on PostgreSQL): user ids,
#: seconds, counts.
INT32_MAX = 2**31 - 1
#: Largest value of a 64-bit signed column (BigAutoField primary keys).
INT64_MAX = 2**63 - 1
#: Deeper than anything Bitrix24, Unitalk or our pages send (they nest 3-4 levels).
MAX_JSON_DEPTH = 32

_DIGITS = re.compile(r"[0-9]{1,19}")
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class InputError(ValidationError):
    """A value from outside is not what it must be. `field` names it; the message says why."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, code="invalid_input", extra={"field": field})
        self.field = field


def parse_int(
    value: Any,
    *,
    field: str,
    minimum: int = 0,
    maximum: int = INT32_MAX,
) -> int:
    """`value` as an int within [minimum, maximum]. Raises InputError naming `field`.

    Accepted: an int (not a bool), or a string of ASCII digits with optional surrounding ASCII
    spaces. Refused: floats, signs, Unicode digits, more than 19 digits, anything else.
    """
    if isinstance(value, bool):
        raise InputError(f"{field} must be a whole number", field=field)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip(" \t")):
        number = int(value.strip(" \t"))
    else:
        raise InputError(f"{field} must be a whole number", field=field)
    if not minimum <= number <= maximum:
        raise InputError(f"{field} must be between {minimum} and {maximum}", field=field)
    return number


def parse_int_or_none(
    value: Any,
    *,
    field: str,
    minimum: int = 0,
    maximum: int = INT32_MAX,
) -> int | None:
    """Like `parse_int`, but None and "" (an absent value) give None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_int(value, field=field, minimum=minimum, maximum=maximum)


def positive_id_or_none(value: Any) -> int | None:
    """A positive 32-bit id from a provider answer, or None for anything else (never raises).

    For values we only use when they make sense (CRM entity ids, file ids in Bitrix24's
    answers): "0", "", "undefined" and out-of-range values all mean "none".
    """
    try:
        return parse_int_or_none(value, field="id", minimum=1)
    except InputError:
        return None


def json_depth_ok(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether `text` nests arrays/objects no deeper than `max_depth` (strings are skipped)."""
    # Fast path: a body with few brackets cannot be deep (a webhook has about five).
    if text.count("[") + text.count("{") <= max_depth:
        return True
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return False
        elif token in "]}":
            depth -= 1
    return True


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259), and no database column can store them.
    raise _NotFinite(name)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400
        raise _NotFinite(text)
    return value


def has_nul(text: str) -> bool:
    """NUL cannot be stored in a PostgreSQL text or jsonb value: refuse it at the door."""
    return "\x00" in text


def parse_json_object(raw: str | bytes, *, field: str = "body") -> dict[str, Any]:
    """A JSON object from outside (empty body: {}). Raises InputError for anything else."""
    if not raw.strip():
        return {}
    data = parse_json(raw, field=field)
    if not isinstance(data, dict):
        raise InputError(f"{field} must be a JSON object", field=field)
    return data


def parse_json(raw: str | bytes, *, field: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON from outside. Raises InputError (not JSON, not UTF-8, nested too deep)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{field} is not valid UTF-8", field=field) from None
    else:
        text = raw
    if not json_depth_ok(text, max_depth=max_depth):
        raise InputError(f"{field} is nested deeper than {max_depth} levels", field=field)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except _NotFinite:
        raise InputError(f"{field} has a number out of range", field=field) from None
    except RecursionError:  # the scan above makes this unreachable; never a 500 regardless
        raise InputError(f"{field} is nested too deep", field=field) from None
    except ValueError:
        raise InputError(f"{field} is not valid JSON", field=field) from None
