"""Fixtures for the campaign tests: the call-pipeline portal and connection, a Bitrix24 CRM
fake behind `responses` (crm.item.*, crm.calllist.items.get, batch) shaped as docs/agents.md §2
and docs/sandbox.md describe it, and a campaign with two agents on lines 101 and 102."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from integration.campaigns import services
from integration.campaigns.models import Campaign
from integration.unitalk.models import OperatorMapping
from tests.integration.calls.fixtures import REST, UNITALK
from tests.support.factories import AgentStateFactory

__all__ = ["FakeCrm", "campaign", "crm", "dials"]

PAGE = 50


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Bracketed form keys (a batch sub-command) back into nested dicts and lists."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@dataclass
class FakeCrm:
    rsps: responses.RequestsMock
    #: entityTypeId → id → item (camelCase, `fm` phones).
    items: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    call_lists: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    registers: list[dict[str, Any]] = field(default_factory=list)
    todos: list[dict[str, Any]] = field(default_factory=list)
    #: im.notify.system.add as sent (USER_ID, MESSAGE, TAG).
    notices: list[dict[str, Any]] = field(default_factory=list)

    def install(self) -> FakeCrm:
        self.rsps.add_callback(
            responses.POST, re.compile(re.escape(REST) + r"[\w.]+"), callback=self._handle
        )
        return self

    def add(self, type_id: int, item_id: int, *phones: str, **fields: Any) -> None:
        fm = [{"typeId": "PHONE", "value": p} for p in phones] if type_id in (1, 3, 4) else None
        item = {"id": item_id, "assignedById": 1, **fields}
        if fm is not None:
            item["fm"] = fm
        self.items.setdefault(type_id, {})[item_id] = item

    def _handle(self, request: Any) -> Any:
        method = request.url.rsplit("/", 1)[-1].lower()
        params = json.loads(request.body or "{}")
        self.requests.append(method)
        if method == "batch":
            results, errors = {}, {}
            for key, command in params["cmd"].items():
                sub, _, query = command.partition("?")
                try:
                    results[key] = self.run(sub.lower(), _unflatten(parse_qsl(query)))[0]
                except LookupError as exc:
                    errors[key] = {"error": "NOT_FOUND", "error_description": str(exc)}
            body = {"result": {"result": results, "result_error": errors or [], "result_total": {}}}
            return 200, {}, json.dumps(body)
        try:
            result, extra = self.run(method, params)
        except LookupError as exc:
            return 400, {}, json.dumps({"error": "NOT_FOUND", "error_description": str(exc)})
        return 200, {}, json.dumps({"result": result, **extra})

    def run(self, method: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if method == "crm.item.get":
            found = self.items.get(int(params["entityTypeId"]), {}).get(int(params["id"]))
            if found is None:
                raise LookupError("Element not found")
            return {"item": found}, {}
        if method == "crm.item.list":
            rows = sorted(
                self.items.get(int(params["entityTypeId"]), {}).values(), key=lambda r: r["id"]
            )
            wanted = (params.get("filter") or {}).get("@id")
            if wanted is not None:
                ids = {int(v) for v in (wanted.values() if isinstance(wanted, dict) else wanted)}
                rows = [r for r in rows if r["id"] in ids]
            start = int(params.get("start") or 0)
            page = rows[start : start + PAGE]
            extra: dict[str, Any] = {"total": len(rows)}
            if start + PAGE < len(rows):
                extra["next"] = start + PAGE
            return {"items": page}, extra
        if method == "crm.calllist.items.get":
            return self.call_lists[int(params["LIST_ID"])], {}
        if method == "crm.timeline.comment.add":
            self.comments.append(params["fields"])
            return len(self.comments), {}
        if method == "telephony.externalcall.register":
            self.registers.append(params)
            return {"CALL_ID": f"externalCall.{len(self.requests)}"}, {}
        if method == "telephony.externalcall.finish":
            return {"CALL_ID": params.get("CALL_ID"), "CRM_ACTIVITY_ID": 1}, {}
        if method in ("telephony.externalcall.searchcrmentities", "crm.activity.list"):
            return [], {}
        if method == "crm.activity.todo.add":
            self.todos.append(params)
            return {"id": len(self.todos)}, {}
        if method == "im.notify.system.add":
            self.notices.append(params)
            return len(self.notices), {}
        raise AssertionError(f"unexpected method {method}")

    def count(self, method: str) -> int:
        return self.requests.count(method)


@pytest.fixture
def crm(rsps) -> FakeCrm:
    return FakeCrm(rsps).install()


@pytest.fixture
def dials(rsps) -> list[dict[str, str]]:
    """Every Unitalk directCall as its form fields; each answers Success."""
    seen: list[dict[str, str]] = []

    def answer(request: Any) -> Any:
        seen.append(dict(parse_qsl(request.body)))
        return 200, {}, json.dumps({"status": "Success"})

    rsps.add_callback(responses.POST, f"{UNITALK}/phones/directCall", callback=answer)
    return seen


@pytest.fixture
def campaign(portal, connection) -> Campaign:
    # connection maps user 5 → line 101; a second agent on line 102. Both are present: their
    # work day is open and Bitrix24 was read just now (docs/agents.md §5.1).
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=6, line="102")
    AgentStateFactory(portal=portal, bitrix_user_id=5, line="101")
    AgentStateFactory(portal=portal, bitrix_user_id=6, line="102")
    return services.campaign_create(
        portal=portal,
        name="Spring leads",
        agent_user_ids=[5, 6],
        timezone="UTC",
        window_start=time(0, 0),
        window_end=time(23, 59, 59),
        wrap_up_s=0,
        manager_user_id=1,
    )
