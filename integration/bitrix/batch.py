"""Bitrix24 `batch`: up to 50 commands in one HTTP request (one slot of the leaky bucket).

    result = batch(portal, {"line": ("telephony.externalLine.add", {"NUMBER": "1"}), ...})
    result.results["line"], result.errors.get("line")

Larger sets are split into requests of 50. Results and errors stay keyed by command key: each
map of the answer is a PHP array, so it comes as a JSON list when its keys are 0..n-1 and as an
object otherwise (`result_error` of a list-form batch whose every command failed is a list —
fast_bitrix24's recorded real answers; docs/bitrix24.md §2.5, §8). Each command's `result_time` entry
feeds the operating ledger under that command's method.

`$result[key][field]` references are percent-encoded like any other value: Bitrix24 fills them in
after decoding a command, as the official b24pysdk relies on (issue 19; the sandbox accepts both
the raw and the encoded form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bitrixapp.models import Portal
from integration.bitrix import client
from integration.core import inputs

MAX_COMMANDS = 50

Command = tuple[str, Mapping[str, Any] | None]


@dataclass
class BatchResult:
    results: dict[str, Any] = field(default_factory=dict)
    #: key → {"error": CODE, "error_description": TEXT} as Bitrix24 sent it.
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    nexts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def encode_params(params: Mapping[str, Any] | None, prefix: str = "") -> str:
    """PHP-style query string with bracketed keys: `fields[PHONE][0][VALUE]=...`."""
    pairs: list[str] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        else:
            if value is None:
                value = ""
            elif isinstance(value, bool):
                # PHP truthiness: never send "false" (docs/bitrix24.md §5)
                value = "1" if value else "0"
            pairs.append(f"{quote(key, safe='[]')}={quote(str(value), safe='')}")

    walk(params or {}, prefix)
    return "&".join(pairs)


def command_string(method: str, params: Mapping[str, Any] | None) -> str:
    query = encode_params(params)
    return f"{method}?{query}" if query else method


def batch(
    portal: Portal,
    commands: Mapping[str, Command] | Sequence[Command],
    *,
    halt: bool = False,
) -> BatchResult:
    """Run commands in batches of ≤50; with `halt`, stop at the first chunk that has an error.

    A list of commands is keyed "0", "1", ... in the result. Whole-request failures raise like
    `client.call`; per-command failures are in `.errors`.
    """
    items: list[tuple[str, Command]] = (
        [(str(k), v) for k, v in commands.items()]
        if isinstance(commands, Mapping)
        else [(str(i), v) for i, v in enumerate(commands)]
    )
    out = BatchResult()
    for start in range(0, len(items), MAX_COMMANDS):
        chunk = items[start : start + MAX_COMMANDS]
        cmd = {key: command_string(method, params) for key, (method, params) in chunk}
        answer = client.call(portal, "batch", {"halt": 1 if halt else 0, "cmd": cmd})
        merge_answer(out, answer, portal=portal, methods={k: m for k, (m, _) in chunk})
        if halt and out.errors:
            break
    return out


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def merge_answer(
    out: BatchResult,
    answer: Any,
    *,
    portal: Portal | None = None,
    methods: Mapping[str, str] | None = None,
) -> None:
    """Fold one `batch` answer into `out`; with `portal` and `methods` (key → method name),
    note each command's `result_time` in the operating ledger."""
    answer = answer if isinstance(answer, dict) else {}
    if portal is not None and methods:
        for key, timing in _as_map(answer.get("result_time")).items():
            if key in methods:
                client.ledger_note(portal, methods[key], timing)
    out.results.update(_as_map(answer.get("result")))
    for key, error in _as_map(answer.get("result_error")).items():
        out.errors[key] = error if isinstance(error, dict) else {"error": str(error)}
    # The one integer parser (docs/security.md "Numbers and JSON from outside"): an answer that
    # is not a count fails the job as a validation error, not with a ValueError's traceback.
    for key, value in _as_map(answer.get("result_total")).items():
        out.totals[key] = inputs.parse_int(value, field=f"result_total[{key}]")
    for key, value in _as_map(answer.get("result_next")).items():
        out.nexts[key] = inputs.parse_int(value, field=f"result_next[{key}]")
