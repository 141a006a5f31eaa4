"""The portal's request limits: a leaky bucket per portal and operating seconds per method
(docs/bitrix24.md §4.1, §4.2). Runtime-only: `POST /_sandbox/reset` clears them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

OPERATING_WINDOW = 600.0


class Limits:
    """Leaky bucket per portal and operating seconds per (portal, method).

    docs/bitrix24.md §4.1, §4.2.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, list[float]] = {}
        self._operating: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._operating.clear()

    def admit(self, portal: dict[str, Any]) -> bool:
        """Count one HTTP request; False when the bucket would overflow."""
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(portal["member_id"], [0.0, now])
            level = max(0.0, level - (now - last) * float(portal["drain"]))
            if level + 1 > float(portal["burst"]) + 1e-9:
                self._buckets[portal["member_id"]] = [level, now]
                return False
            self._buckets[portal["member_id"]] = [level + 1, now]
            return True

    def operating(self, portal: dict[str, Any], name: str) -> tuple[float, float]:
        """(seconds used in the window, unix time the oldest basket drops)."""
        now = time.time()
        with self._lock:
            entries = self._operating.setdefault((portal["member_id"], name), deque())
            while entries and entries[0][0] < now - OPERATING_WINDOW:
                entries.popleft()
            used = sum(cost for _, cost in entries)
            reset_at = (entries[0][0] if entries else now) + OPERATING_WINDOW
            return used, reset_at

    def spend(self, portal: dict[str, Any], name: str) -> None:
        with self._lock:
            entries = self._operating.setdefault((portal["member_id"], name), deque())
            entries.append((time.time(), float(portal["operating_cost"])))
