"""Manual user <-> line mapping rules the settings page relies on (docs/pages.md "Settings").

A mapping by hand may take a line from another user: the page shows `operator_map_conflicts`
and asks first. Mapping a line also closes (or shrinks) the "lines without a user" problem,
so its banner goes away with its cause.
"""

from __future__ import annotations

from django.db import models

from bitrixapp.models import Portal
from integration.core import alerts
from integration.models import Notification
from integration.unitalk.models import OperatorMapping


def operator_map_conflicts(
    *, portal: Portal, bitrix_user_id: int, line: str
) -> list[OperatorMapping]:
    """The pairs a manual mapping of (user, line) would replace: the line's other user and the
    user's other line. The page asks before it lets a line change hands."""
    line = str(line).strip()
    return list(
        OperatorMapping.objects.filter(portal=portal)
        .filter(
            models.Q(line=line) & ~models.Q(bitrix_user_id=bitrix_user_id)
            | models.Q(bitrix_user_id=bitrix_user_id) & ~models.Q(line=line)
        )
        .order_by("line")
    )


def unmapped_lines_recheck(*, portal: Portal, tag: str) -> None:
    """After a mapping by hand: drop now-mapped lines from the "lines without a user" problem,
    and close it when none is left (the banner goes away with its cause)."""
    row = Notification.objects.filter(portal=portal, tag=tag, resolved_at__isnull=True).first()
    if row is None:
        return
    mapped = set(OperatorMapping.objects.filter(portal=portal).values_list("line", flat=True))
    left = [line for line in (row.params.get("lines") or []) if line not in mapped]
    if not left:
        alerts.notification_resolve(portal=portal, tag=tag)
        return
    Notification.objects.filter(pk=row.pk).update(params={**row.params, "lines": left})
