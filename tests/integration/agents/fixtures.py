"""Agent-status fakes behind `responses`, shaped as docs/agents.md §1.1/§1.4 and
docs/bitrix24.md §2.5/§7.1 describe: timeman.status/settings/pause/open, user.get by ID,
department.get with UF_HEAD, im.notify.system.add with TAG replacement, batch; and Unitalk's
UNCONFIRMED operator-status API (names.py) with an on/off switch and a fault knob."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from integration.unitalk import names
from integration.unitalk.models import OperatorMapping
from tests.integration.calls.fixtures import REST, UNITALK

__all__ = ["FakeAgentsPortal", "FakeUnitalkStatus", "agents_portal", "mapped", "unitalk_status"]


@dataclass
class FakeAgentsPortal:
    rsps: responses.RequestsMock
    days: dict[int, str] = field(default_factory=dict)  # user -> OPENED/PAUSED/CLOSED/...
    tracking: dict[int, Any] = field(default_factory=dict)  # user -> UF_TIMEMAN
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    heads: dict[int, int] = field(default_factory=dict)  # department -> head user
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)  # TAG -> last notice
    notices_sent: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    #: Whole requests answered with this (status, body) while set.
    down: tuple[int, dict[str, Any]] | None = None
    module_missing: bool = False
    #: method -> users whose command fails with an error the app does not know.
    odd_errors: dict[str, set[int]] = field(default_factory=dict)

    def install(self) -> FakeAgentsPortal:
        self.rsps.add_callback(
            responses.POST, re.compile(re.escape(REST) + r"[\w.]+"), callback=self._handle
        )
        return self

    def user(self, uid: int, *, active: bool = True, online: bool = True, dept: int = 1):
        self.users[uid] = {
            "ID": str(uid),
            "NAME": f"Agent{uid}",
            "LAST_NAME": "Test",
            "ACTIVE": active,
            "IS_ONLINE": "Y" if online else "N",
            "UF_DEPARTMENT": [dept],
        }
        self.days.setdefault(uid, "OPENED")

    def _handle(self, request: Any) -> Any:
        method = request.url.rsplit("/", 1)[-1].lower()
        self.requests.append(method)
        if self.down is not None:
            return self.down[0], {}, json.dumps(self.down[1])
        params = json.loads(request.body or "{}")
        if method == "batch":
            results: dict[str, Any] = {}
            errors: dict[str, Any] = {}
            for key, command in params["cmd"].items():
                name, _, query = command.partition("?")
                try:
                    results[key] = self.run(name.lower(), dict(parse_qsl(query)))
                except LookupError as exc:
                    errors[key] = json.loads(str(exc))
            return (
                200,
                {},
                json.dumps({"result": {"result": results, "result_error": errors or []}}),
            )
        try:
            return 200, {}, json.dumps({"result": self.run(method, params)})
        except LookupError as exc:
            return 400, {}, str(exc)

    @staticmethod
    def _error(code: str, text: str) -> LookupError:
        return LookupError(json.dumps({"error": code, "error_description": text}))

    def run(self, method: str, params: dict[str, Any]) -> Any:
        uid = int(params.get("USER_ID") or params.get("ID") or 0)
        if uid in self.odd_errors.get(method, set()):
            raise self._error("SOMETHING_ODD", "Unexpected failure")
        if method.startswith("timeman.") and self.module_missing:
            raise self._error("ERROR_METHOD_NOT_FOUND", "Method not found!")
        if method == "timeman.status":
            if uid not in self.users:
                raise self._error("", "User not found")
            return {
                "STATUS": self.days.get(uid, "CLOSED"),
                "TIME_START": "2026-12-01T09:02:00+02:00",
            }
        if method == "timeman.settings":
            if uid not in self.users:
                raise self._error("", "User not found")
            return {"UF_TIMEMAN": self.tracking.get(uid, True), "UF_TM_FREE": False}
        if method == "timeman.pause":
            self.days[uid] = "PAUSED"
            return {"STATUS": "PAUSED"}
        if method == "timeman.open":
            self.days[uid] = "OPENED"
            return {"STATUS": "OPENED"}
        if method == "timeman.close":
            raise AssertionError("the app never closes a work day")
        if method == "user.get":
            return [self.users[uid]] if uid in self.users else []
        if method == "department.get":
            dept = int(params.get("ID") or 0)
            head = self.heads.get(dept)
            return [{"ID": str(dept), "NAME": "Sales", "UF_HEAD": str(head or "")}]
        if method == "im.notify.system.add":
            notice = {
                "USER_ID": int(params["USER_ID"]),
                "TAG": params["TAG"],
                "MESSAGE": params["MESSAGE"],
            }
            self.notices[params["TAG"]] = notice  # a repeat TAG replaces (docs/bitrix24.md §7.1)
            self.notices_sent.append(notice)
            return len(self.notices_sent)
        raise AssertionError(f"unexpected method {method}")

    def polls(self) -> int:
        return self.requests.count("batch")


@pytest.fixture
def agents_portal(rsps) -> FakeAgentsPortal:
    return FakeAgentsPortal(rsps).install()


@dataclass
class FakeUnitalkStatus:
    rsps: responses.RequestsMock
    present: bool = True
    fault: str = ""  # "", "error", "5xx"
    statuses: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    def install(self) -> FakeUnitalkStatus:
        for path in (names.OPERATOR_STATUS_SET, names.OPERATOR_STATUS_GET):
            self.rsps.add_callback(responses.POST, f"{UNITALK}/{path}", callback=self._handle)
        return self

    def _handle(self, request: Any) -> Any:
        self.calls += 1
        if not self.present:
            return 200, {}, json.dumps({"status": "Error", "message": "Unknown method"})
        if self.fault == "5xx":
            return 502, {}, "bad gateway"
        if self.fault == "error":
            return 200, {}, json.dumps({"status": "Error", "message": "Internal error"})
        body = json.loads(request.body or "{}")
        line = str(body.get(names.OPERATOR_STATUS_LINE_FIELD))
        if names.OPERATOR_STATUS_FIELD in body:
            self.statuses[line] = body[names.OPERATOR_STATUS_FIELD]
        return (
            200,
            {},
            json.dumps({"status": "Success", "line": line, "value": self.statuses.get(line, "")}),
        )


@pytest.fixture
def unitalk_status(rsps) -> FakeUnitalkStatus:
    return FakeUnitalkStatus(rsps).install()


@pytest.fixture
def mapped(portal, connection, agents_portal):
    """Users 5 (line 101, fixture `connection`) and 6 (line 102), department 1 headed by 20."""
    OperatorMapping.objects.create(portal=portal, bitrix_user_id=6, line="102")
    agents_portal.user(5)
    agents_portal.user(6)
    agents_portal.heads[1] = 20
    return portal
