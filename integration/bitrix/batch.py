"""Bitrix24 `batch`: up to 50 commands in one HTTP request (one slot of the leaky bucket).

    result = batch(portal, {"line": ("telephony.externalLine.add", {"NUMBER": "1"}), ...})
    result.results["line"], result.errors.get("line")

Larger sets are split into requests of 50. Results and errors stay keyed by command key (the
answer's shape is irregular: lists when all succeed, maps when some fail —
docs/bitrix24.md §2.5, §8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bitrixapp.models import Portal
from integration.bitrix import client

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
        _merge(out, answer)
        if halt and out.errors:
            break
    return out


def _as_map(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _merge(out: BatchResult, answer: Any) -> None:
    answer = answer if isinstance(answer, dict) else {}
    out.results.update(_as_map(answer.get("result")))
    for key, error in _as_map(answer.get("result_error")).items():
        out.errors[key] = error if isinstance(error, dict) else {"error": str(error)}
    for key, value in _as_map(answer.get("result_total")).items():
        out.totals[key] = int(value)
    for key, value in _as_map(answer.get("result_next")).items():
        out.nexts[key] = int(value)
