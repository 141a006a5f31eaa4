"""System notifications in Bitrix24 (`im.notify.system.add`, docs/bitrix24.md §7.1)."""

from __future__ import annotations

from typing import Any

from bitrixapp.models import Portal
from integration.bitrix import client

# Bitrix24 keeps TAG unique per app and replaces an older notice with the same TAG, so a problem
# raised again shows once, updated. The prefix keeps our tags apart from any other use.
TAG_PREFIX = "unitalk:"


def notify_system_add(portal: Portal, *, user_id: int, message: str, tag: str) -> Any:
    """Tell one user; returns the notification id (may be false). Raises the client's errors."""
    return client.call(
        portal,
        "im.notify.system.add",
        {"USER_ID": int(user_id), "MESSAGE": message[:4000], "TAG": (TAG_PREFIX + tag)[:255]},
    )
