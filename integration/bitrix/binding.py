"""What the app binds on every install and update: events, placements, the external line, the
"Add to campaign" robot.

Bitrix24 drops an app's event handlers on update ("they must be set from scratch in the installer
of each version", docs/bitrix24.md §1.1), so install re-binds everything and treats "already exists"
answers as success. All binds go in one `batch` request (one slot of the portal's bucket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_noop

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


#: The automation robot "Add to campaign" (docs/campaigns.md, "The robot"; bizproc.robot.add,
#: docs/agents.md §2.2). The portal POSTs ROBOT_URL form-encoded when the robot runs; it does not
#: wait for bizproc.event.send (USE_SUBSCRIPTION N). Names go in the portal's three languages.
ROBOT_CODE = "unitalk_add_to_campaign"
ROBOT_KEY = f"robot:{ROBOT_CODE}"
ROBOT_PROPERTY = "campaign"
#: Steps whose failure does not stop the install: a portal without the bizproc scope (or with
#: automation off) still gets telephony; the report names what was left out.
OPTIONAL = frozenset({ROBOT_KEY})


def robot_url() -> str:
    return f"{settings.APP_BASE_URL}/bitrix/robots/add-to-campaign/"


def _in_languages(text: str) -> dict[str, str]:
    """{language: text} in every app language: Bitrix24 shows a robot's names in the user's own
    language when NAME is such a map (DOC bizproc-robot-add.md)."""
    names: dict[str, str] = {}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            names[code] = translation.gettext(text)
    return names


def robot_command() -> Command:
    return (
        "bizproc.robot.add",
        {
            "CODE": ROBOT_CODE,
            "HANDLER": robot_url(),
            "NAME": _in_languages(gettext_noop("Add to Unitalk campaign")),
            "USE_SUBSCRIPTION": "N",
            "PROPERTIES": {
                ROBOT_PROPERTY: {
                    "Name": _in_languages(gettext_noop("Campaign number")),
                    "Description": _in_languages(
                        gettext_noop("The number shown on the app's Campaigns page")
                    ),
                    "Type": "int",
                    "Required": "Y",
                }
            },
        },
    )


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
    commands[ROBOT_KEY] = robot_command()
    return commands


@dataclass
class BindReport:
    bound: list[str]
    existing: list[str]
    #: Optional steps that failed: key -> Bitrix24's answer (the install went on without them).
    left_out: dict[str, str] = field(default_factory=dict)


def portal_bind_all(portal: Portal) -> BindReport:
    """Bind events, placements and the line. Raises the first non-duplicate error's class."""
    result = batch(portal, install_commands())
    bound, existing, failures = [], [], []
    left_out: dict[str, str] = {}
    for key in install_commands():
        if key in result.errors:
            err = result.errors[key]
            if errors.is_already_exists(err):
                existing.append(key)
            elif key in OPTIONAL:
                left_out[key] = f"{err.get('error', '')}: {err.get('error_description', '')}"[:500]
            else:
                failures.append((key, err))
        else:
            bound.append(key)
    if failures:
        key, err = failures[0]
        raise _bind_failure(key, err, len(failures))
    return BindReport(bound=bound, existing=existing, left_out=left_out)


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
