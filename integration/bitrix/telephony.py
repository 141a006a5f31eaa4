"""Telephony methods of Bitrix24 REST (reference §5) used by the install and the call pipeline."""

from __future__ import annotations

from typing import Any

from bitrixapp.models import Portal
from integration.bitrix import client


def external_line_command(*, number: str, name: str) -> tuple[str, dict[str, Any]]:
    """`telephony.externalLine.add` as a batch command (install binds it with events/placements)."""
    return "telephony.externalLine.add", {"NUMBER": number, "NAME": name, "CRM_AUTO_CREATE": "Y"}


def external_line_add(portal: Portal, *, number: str, name: str) -> Any:
    """Add the app's line. Raises PermanentError with 'Line already exists' when it exists."""
    method, params = external_line_command(number=number, name=name)
    return client.call(portal, method, params)


def external_lines(portal: Portal) -> list[dict[str, Any]]:
    result = client.call(portal, "telephony.externalLine.get")
    return result if isinstance(result, list) else []
