"""`app.info` on the portal REST base: the application's record (docs/bitrix24.md §1.1, §1.4)."""

from __future__ import annotations

from typing import Any

from sandbox.bitrix.rest import Call, method


def app_info_result(portal: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": 1,
        "CODE": portal["client_id"],
        "VERSION": 1,
        "STATUS": "L",
        "INSTALLED": portal["installed"],
        "PAYMENT_EXPIRED": "N",
        "DAYS": None,
        "LANGUAGE_ID": "en",
        "LICENSE": "en_project",
        "LICENSE_TYPE": "project",
        "LICENSE_FAMILY": "project",
    }


@method("app.info")
def app_info(call: Call) -> Any:
    return app_info_result(call.portal)
