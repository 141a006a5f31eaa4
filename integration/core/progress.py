"""How far a long piece of work has got (done / total), for pages that show it (docs/pages.md
"Progress"): the work writes, the page's job poll reads. Kept in the shared cache for a few
minutes; a lost entry only means the page shows no count, never a wrong one."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

TTL_S = 600


def _key(kind: str, portal_id: int) -> str:
    return f"progress:{kind}:{portal_id}"


def progress_set(*, kind: str, portal_id: int, done: int, total: int, step: str = "") -> None:
    cache.set(_key(kind, portal_id), {"done": done, "total": total, "step": step}, TTL_S)


def progress_get(*, kind: str, portal_id: int) -> dict[str, Any] | None:
    value = cache.get(_key(kind, portal_id))
    return value if isinstance(value, dict) else None
