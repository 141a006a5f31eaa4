"""Entry points the Bitrix24 side calls (bitrixapp.services.event_process)."""

from __future__ import annotations

import logging

from bitrixapp.models import BitrixEvent
from integration.calls import dial

logger = logging.getLogger(__name__)


def on_bitrix_event(event: BitrixEvent) -> None:
    """A stored telephony event: start a click-to-call or a callback. Repeats are no-ops."""
    name = event.event.upper()
    if name == "ONEXTERNALCALLSTART":
        dial.click_to_call_start(event=event)
    elif name == "ONEXTERNALCALLBACKSTART":
        dial.callback_start(event=event)
    else:
        logger.info("event not for the call pipeline", extra={"event": name})
