"""The Bitrix24 REST methods the sandbox portal answers; importing the package registers them."""

from __future__ import annotations

from sandbox.bitrix.methods import telephony
from sandbox.bitrix.rest import METHODS

__all__ = ["METHODS", "telephony"]
