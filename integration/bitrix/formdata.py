"""Bitrix24 events arrive form-encoded with PHP bracketed keys: `auth[member_id]=…&data[CALL_ID]=…`.

`form_parse` turns them into nested dicts (`{"auth": {"member_id": …}}`), refusing anything
ambiguous instead of guessing: a key used both as a value and as a container, unbalanced
brackets, absurd depth or field counts.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

MAX_FIELDS = 1000
MAX_DEPTH = 8

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """The body is not a well-formed bracketed form."""


def key_path(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise FormError(f"malformed key {key[:60]!r}")
    path = [match.group(1), *_PART.findall(match.group(2))]
    if len(path) > MAX_DEPTH:
        raise FormError(f"key nested too deep: {key[:60]!r}")
    return path


def form_parse(body: str | bytes) -> dict[str, Any]:
    """Parse a form body into nested dicts; `a[]=1&a[]=2` becomes a list. Raises FormError."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormError("body is not UTF-8") from exc
    try:
        pairs = parse_qsl(
            body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except ValueError as exc:
        raise FormError(str(exc)) from exc
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = key_path(key)
        node: Any = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, list):
                if part != "" or not last:
                    raise FormError(f"mixed list and map at {key[:60]!r}")
                node.append(value)
                break
            if last:
                if part == "":
                    raise FormError(f"empty key in {key[:60]!r}")
                if isinstance(node.get(part), dict | list):
                    raise FormError(f"{key[:60]!r} is both a value and a container")
                node[part] = value
                break
            nxt_is_list = path[i + 1] == ""
            child = node.get(part)
            if child is None:
                child = [] if nxt_is_list else {}
                node[part] = child
            elif not isinstance(child, dict | list) or isinstance(child, list) != nxt_is_list:
                raise FormError(f"{key[:60]!r} conflicts with an earlier field")
            node = child
    return root
