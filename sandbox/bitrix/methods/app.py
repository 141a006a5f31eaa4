"""`app.info` on the portal: the same answer as the OAuth server's (docs/bitrix24.md §1.5)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.rest import Call, method
from sandbox.oauth import app_info_result


@method("app.info")
def app_info(call: Call) -> Any:
    return app_info_result(call.portal)
