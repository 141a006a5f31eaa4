"""What the app binds on every install and update: events, placements, the external line.

Bitrix24 drops an app's event handlers on update ("they must be set from scratch in the installer
of each version", docs/bitrix24.md §1.1), so install re-binds everything and treats "already exists"
answers as success. All binds go in one `batch` request (one slot of the portal's bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from bitrixapp.models import Portal
from integration.bitrix import errors, telephony
from integration.bitrix.batch import Command, batch
from integration.core.errors import IntegrationError

EVENTS = ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL")
PLACEMENTS = (
    "CRM_LEAD_DETAIL_TAB",
    "CRM_DEAL_DETAIL_TAB",
    "CRM_CONTACT_DETAIL_TAB",
    "CRM_COMPANY_DETAIL_TAB",
    "CALL_CARD",
)


def events_url() -> str:
    return f"{settings.APP_BASE_URL}/bitrix/events/"


def placement_url() -> str:
    return f"{settings.APP_BASE_URL}/bitrix/placement/"


def install_commands() -> dict[str, Command]:
    commands: dict[str, Command] = {}
    for event in EVENTS:
        commands[f"event:{event}"] = ("event.bind", {"event": event, "handler": events_url()})
    for code in PLACEMENTS:
        commands[f"placement:{code}"] = (
            "placement.bind",
            {"PLACEMENT": code, "HANDLER": placement_url(), "TITLE": settings.BITRIX24_APP_TITLE},
        )
    commands["line"] = telephony.external_line_command(
        number=settings.BITRIX24_LINE_NUMBER, name=settings.BITRIX24_LINE_NAME
    )
    return commands


@dataclass
class BindReport:
    bound: list[str]
    existing: list[str]


def portal_bind_all(portal: Portal) -> BindReport:
    """Bind events, placements and the line. Raises the first non-duplicate error's class."""
    result = batch(portal, install_commands())
    bound, existing, failures = [], [], []
    for key in install_commands():
        if key in result.errors:
            err = result.errors[key]
            if errors.is_already_exists(err):
                existing.append(key)
            else:
                failures.append((key, err))
        else:
            bound.append(key)
    if failures:
        key, err = failures[0]
        raise _bind_failure(key, err, len(failures))
    return BindReport(bound=bound, existing=existing)


def _bind_failure(key: str, err: dict[str, Any], count: int) -> IntegrationError:
    error = errors.error_build(
        code=str(err.get("error") if err.get("error") is not None else ""),
        description=str(err.get("error_description") or ""),
        status=None,
        method=f"batch[{key}]",
    )
    error.message = f"{count} install step(s) failed; first: {key}: {error.message}"
    error.args = (error.message,)
    return error
