"""Bitrix24-style form encoding: nested data as bracketed keys (`data[PHONE][0][VALUE]=...`).

Bitrix24 (PHP) both accepts and sends `application/x-www-form-urlencoded` bodies whose keys carry
the nesting (docs/bitrix24.md §1.3, §2.1); PHP turns `a[0]`, `a[1]` into a list.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

_KEY = re.compile(r"^([^\[]*)((?:\[[^\]]*\])*)$")


def encode(data: dict[str, Any]) -> str:
    """Flatten nested dicts/lists into bracketed keys and url-encode them."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        _flatten(str(key), value, pairs)
    return urlencode(pairs)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]", item, out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(f"{prefix}[{index}]", item, out)
    elif value is None:
        out.append((prefix, ""))
    elif value is True or value is False:
        out.append((prefix, "1" if value else "0"))
    else:
        out.append((prefix, str(value)))


def decode(text: str) -> dict[str, Any]:
    """Parse a query string / form body into nested data the way PHP's `$_REQUEST` does."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match or not match.group(1):
            root[raw_key] = value
            continue
        parts = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return _listify(root)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        keys = sorted(int(key) for key in converted)
        if keys == list(range(len(keys))):
            return [converted[str(key)] for key in keys]
    return converted
