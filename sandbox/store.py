"""Simulator state: one JSON document behind one lock, saved to disk in the background.

The state file (default `var/sandbox/state.json`, or `SANDBOX_STATE`) survives restarts until
`POST /_sandbox/reset`. Rate-limit counters and fault settings are runtime-only on purpose.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_LIMIT = 1000


def empty_state() -> dict[str, Any]:
    return {
        "portals": {},
        "access_tokens": {},
        "refresh_tokens": {},
        "codes": {},
        "uploads": {},
        "webhooks": {},
        "unitalk": {"projects": {}, "calls": [], "deliveries": [], "autodialers": {}},
        "events": [],
        "log": [],
        # Bitrix24 REST requests admitted per portal and method; a batch counts under
        # "batch:<its first command's method>" (the request log is capped and has no methods).
        "requests": {},
        "seq": {},
    }


class Store:
    """Shared state of all three simulators; mutate only under `store.lock`."""

    def __init__(self, path: str | Path | None = None, *, save_interval: float = 0.3) -> None:
        self.lock = threading.RLock()
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = empty_state()
        self._dirty = False
        self._memory_files: dict[int, bytes] = {}
        self._stop = threading.Event()
        if self.path and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                self.data.update(loaded)
            except (OSError, ValueError):
                logger.warning("sandbox state %s unreadable; starting empty", self.path)
        self._saver = threading.Thread(
            target=self._save_loop, args=(save_interval,), daemon=True, name="sandbox-store"
        )
        self._saver.start()

    @property
    def files_dir(self) -> Path | None:
        return self.path.parent / "files" if self.path else None

    def touch(self) -> None:
        self._dirty = True

    def next_id(self, name: str) -> int:
        with self.lock:
            value = int(self.data["seq"].get(name, 0)) + 1
            self.data["seq"][name] = value
            self._dirty = True
            return value

    def reset(self) -> None:
        with self.lock:
            self.data.clear()
            self.data.update(empty_state())
            self._dirty = True
        if self.files_dir and self.files_dir.is_dir():
            for item in self.files_dir.iterdir():
                item.unlink(missing_ok=True)

    def log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            log = self.data["log"]
            log.append(entry)
            if len(log) > LOG_LIMIT:
                del log[: len(log) - LOG_LIMIT]
            self._dirty = True

    def count_request(self, member_id: str, method: str) -> None:
        with self.lock:
            counts = self.data.setdefault("requests", {}).setdefault(member_id, {})
            counts[method] = counts.get(method, 0) + 1
            self._dirty = True

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.data)

    def save(self) -> None:
        if not self.path:
            return
        with self.lock:
            text = json.dumps(self.data, default=str)
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)

    def write_file(self, file_id: int, content: bytes) -> None:
        if self.files_dir:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            (self.files_dir / str(file_id)).write_bytes(content)
        else:
            self._memory_files[file_id] = content

    def read_file(self, file_id: int) -> bytes | None:
        if self.files_dir and (self.files_dir / str(file_id)).is_file():
            return (self.files_dir / str(file_id)).read_bytes()
        return self._memory_files.get(file_id)

    def close(self) -> None:
        self._stop.set()
        self._saver.join(timeout=2)
        self.save()

    def _save_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self._dirty:
                try:
                    self.save()
                except OSError:
                    logger.exception("sandbox state save failed")
