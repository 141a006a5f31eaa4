"""The Unitalk cloud PBX simulator (docs/unitalk.md §7): `/api/<path>` (alias `/tracking/api/...`),
scripted calls that post Standard-JSON webhooks, history, users, autodialer, recordings.

This module is the server: routing, API keys (projects), the weighted request budget, settings
and the control API under `/_sandbox/`. The methods are in api.py, the calls in calls.py, the
recordings in recordings.py. The `auth_status` setting switches "Authorization invalid" from
HTTP 200 (as Unitalk answers, docs/unitalk.md §2.4) to HTTP 401 for robustness tests.
"""

from __future__ import annotations

import copy
import random
import re
import secrets
import threading
import time
from collections import deque
from typing import Any

from sandbox.control import control_common, control_payload
from sandbox.httpcore import App, Request, Response, json_response
from sandbox.unitalk import lines, operators, recordings
from sandbox.unitalk.api import API, error
from sandbox.unitalk.calls import call_start
from sandbox.world import World

DEFAULT_SETTINGS: dict[str, Any] = {
    "auth_status": 200,  # HTTP status of "Authorization invalid": 200 (real) or 401
    "outcome": "answer",  # answer | noanswer | busy | failed (or a raw state such as CHANUNAVAIL)
    "talk_time": 5,  # secondsTalk reported for answered calls
    "ring_time": 3,  # secondsFullTime - secondsTalk
    "event_delay": 0.2,  # wall-clock seconds between CALL_NEW, CALL_ANSWER, CALL_END
    # Play calls in real time instead: CALL_ANSWER ring_time after CALL_NEW, CALL_END talk_time
    # after the answer (bench/campaign.py: an agent's time on a call is the call's length).
    "real_time": False,
    "duplicate_rate": 0.0,  # probability that a webhook is delivered twice
    "reorder": False,  # deliver a call's webhooks in reverse order, after the call ends
    "drop_call_end": False,  # never deliver CALL_END (history still has the call)
    "webhook_delay": 0.0,  # extra seconds before each webhook delivery
    "budget": 600,  # weighted requests per key per window (docs/unitalk.md §2.5)
    "budget_window": 60.0,
    "overload_message": "Too many requests",  # UNCONFIRMED wording
    "history_cap": 1000,  # history/get silently returns at most this many calls
    "history_warning": False,  # put a warning text into history/get when capped
    "rec_auth": False,  # recordings require the Authorization header
    "rec_expiry": 0,  # recordings expire N seconds after the call ends (0 = never)
    "outer_number": "380441234567",
    "group_name": "Sales managers",
    "seed": None,
    # The operator-status API (operators.py, UNCONFIRMED): absent unless switched on.
    "status_api": False,
    "status_api_fault": "",  # "" | error | 500 | 502 | 503 | timeout | slow
    "status_api_fault_seconds": 10.0,  # how long timeout/slow hold the answer
    # Lines (lines.py, UNCONFIRMED): how operator legs end, busy lines, lost directCall answers.
    "operator_outcome": "answer",  # answer | noanswer | busy | chanunavail
    "busy_mode": "allow",  # allow | reject (error envelope) | busy_leg (operator leg BUSY)
    "answer_lost": 0.0,  # probability that directCall's answer is lost after placing the call
}

# Request weights by expected processing time (docs/unitalk.md §2.5: <50 ms = 1 … >1000 ms = 5).
WEIGHTS = {"history/get": 3, "autodial/action": 2, "users/list": 1}

DEFAULT_USERS = [
    {
        "id": 1,
        "firstName": "Anna",
        "lastName": "Admin",
        "line": "101",
        "email": "anna@sandbox.local",
    },
    {
        "id": 2,
        "firstName": "Oleg",
        "lastName": "Operator",
        "line": "102",
        "email": "oleg@sandbox.local",
    },
]


class UnitalkApp(App):
    name = "unitalk"

    def __init__(self, world: World, *, default_key: str | None = None) -> None:
        super().__init__(world.store)
        self.world = world
        self.default_key = default_key
        self._budget: dict[str, deque[tuple[float, int]]] = {}
        self._budget_lock = threading.Lock()
        self.rng = random.Random()  # call ids and duplicates (calls.py)
        self.live = lines.LiveCalls()  # calls in progress per line (busy tracking)
        self.ensure_default_project()

    def ensure_default_project(self) -> None:
        if self.default_key:
            with self.store.lock:
                if self.default_key not in self.store.data["unitalk"]["projects"]:
                    self.project_create({"api_key": self.default_key})

    # ---- plumbing --------------------------------------------------------------------------
    def on_reset(self) -> None:
        super().on_reset()
        with self._budget_lock:
            self._budget.clear()
        self.live.clear()
        self.ensure_default_project()

    def fault_response(self, kind: str) -> Response:
        status = int(kind) if kind.isdigit() else 200
        if kind == "expired_token":
            return error("Authorization invalid", self.settings(None)["auth_status"])
        return error("Internal error", status)

    def settings(self, project: dict[str, Any] | None) -> dict[str, Any]:
        merged = dict(DEFAULT_SETTINGS)
        merged.update(self.store.data["unitalk"].get("settings", {}))
        if project:
            merged.update(project.get("settings", {}))
        return merged

    def project_create(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = str(payload.get("api_key") or secrets.token_urlsafe(9)[:12])
        # A copy each: a project's users change (a test adds lines), the defaults must not
        # (tests/e2e/test_campaign_chaos.py's lines 103-105 reached every later sandbox).
        users = copy.deepcopy(payload.get("users") or DEFAULT_USERS)
        project: dict[str, Any] = {
            "project_id": self.store.next_id("unitalk_project"),
            "api_key": key,
            "users": users,
            "webhooks": [],
            "settings": {},
        }
        with self.store.lock:
            self.store.data["unitalk"]["projects"][key] = project
            self.store.touch()
        return project

    def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sandbox/"):
            return self.control(request)
        match = re.fullmatch(r"/tracking/rec/([^/]+)/([^/]+)/?", path)
        if match:
            return recordings.recording(self, request, match.group(1))
        match = re.fullmatch(r"/(?:api|tracking/api)/(.+?)/?", path)
        if not match:
            return error("Method not found", 404)
        name = match.group(1)
        fault = self.apply_fault(name)
        if fault:
            return fault
        if request.method != "POST":
            return error("Only POST is supported", 405)
        project = self.authenticate(request)
        if project is None:
            return error("Authorization invalid", int(self.settings(None)["auth_status"]))
        if not self.spend(project, WEIGHTS.get(name, 1)):
            return error(self.settings(project)["overload_message"])
        handler = API.get(name)
        if handler is None:
            return error("Method not found", 404)
        try:
            payload = self.payload(request, name)
        except ValueError:
            return error("Invalid request body", 200, "Malformed JSON")
        return handler(self, project, payload)

    def authenticate(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "").strip()
        key = header[7:].strip() if header.lower().startswith("bearer ") else header
        return self.store.data["unitalk"]["projects"].get(key) if key else None

    def payload(self, request: Request, name: str) -> dict[str, Any]:
        if request.content_type == "application/x-www-form-urlencoded" or (
            name == "phones/directCall" and request.content_type != "application/json"
        ):
            return request.form()
        data = request.json() if request.body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("body must be an object")
        return data

    def spend(self, project: dict[str, Any], weight: int) -> bool:
        """Weighted budget per key over a sliding window (docs/unitalk.md §2.5 "Pricing")."""
        settings = self.settings(project)
        now = time.monotonic()
        with self._budget_lock:
            window = self._budget.setdefault(project["api_key"], deque())
            while window and window[0][0] < now - float(settings["budget_window"]):
                window.popleft()
            if sum(w for _, w in window) + weight > int(settings["budget"]):
                return False
            window.append((now, weight))
            return True

    # ---- control ---------------------------------------------------------------------------
    def control(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path in ("/_sandbox/state", "/_sandbox/faults", "/_sandbox/reset"):
            return control_common(self, request)
        payload = control_payload(request)
        if isinstance(payload, Response):
            return payload
        if path == "/_sandbox/keys":
            created = self.project_create(payload)
            return json_response(
                {"api_key": created["api_key"], "project_id": created["project_id"]}, 201
            )
        project = self._control_project(payload)
        if path == "/_sandbox/settings":
            # Without api_key the settings are the defaults of every project.
            project = project if payload.get("api_key") else None
            unknown = set(payload) - set(DEFAULT_SETTINGS) - {"api_key"}
            if unknown:
                return json_response({"error": f"unknown settings {sorted(unknown)}"}, 400)
            if str(payload.get("status_api_fault") or "") not in operators.FAULTS:
                return json_response(
                    {"error": f"status_api_fault must be one of {operators.FAULTS}"}, 400
                )
            bad = _bad_setting(payload)
            if bad:
                return json_response({"error": bad}, 400)
            values = {k: v for k, v in payload.items() if k != "api_key"}
            with self.store.lock:
                if project is not None:
                    project["settings"].update(values)
                else:
                    self.store.data["unitalk"].setdefault("settings", {}).update(values)
                self.store.touch()
            return json_response(self.settings(project))
        if project is None:
            return json_response(
                {"error": "unknown api_key (create one: POST /_sandbox/keys)"}, 404
            )
        if path == "/_sandbox/lines":
            return lines.control(self, project, payload)
        if path == "/_sandbox/operator-status":
            return operators.control(self, project, payload)
        if path == "/_sandbox/webhooks":
            url = str(payload.get("url") or "")
            if not url.startswith(("http://", "https://")):
                return json_response({"error": "url must be http(s)"}, 400)
            events = payload.get("events") or [
                "CALL_NEW",
                "CALL_REDIRECT",
                "CALL_ANSWER",
                "CALL_END",
            ]
            headers = payload.get("headers") or {}
            if not isinstance(events, list) or not isinstance(headers, dict):
                return json_response({"error": "events must be a list, headers an object"}, 400)
            hook = {"url": url, "events": [str(e).upper() for e in events], "headers": headers}
            with self.store.lock:
                if payload.get("replace"):
                    project["webhooks"] = []
                project["webhooks"].append(hook)
                self.store.touch()
            return json_response({"webhooks": project["webhooks"]}, 201)
        if path == "/_sandbox/calls":
            line = str(payload.get("line") or project["users"][0]["line"])
            number = str(payload.get("from") or payload.get("number") or "")
            if not number:
                return json_response({"error": "from (the caller's number) is required"}, 400)
            call = call_start(
                self,
                project,
                direction="IN",
                caller=number,
                callee=[line],
                meta=payload.get("meta"),
                outcome=payload.get("outcome"),
                talk_time=payload.get("talk_time"),
                outer=payload.get("outer_number"),
                on_end=self.live.begin(project["api_key"], line),
            )
            return json_response({"call": call}, 201)
        return json_response({"error": f"unknown control endpoint {path}"}, 404)

    def _control_project(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        projects = self.store.data["unitalk"]["projects"]
        key = payload.get("api_key")
        if key:
            return projects.get(str(key))
        return None if not projects else next(iter(projects.values()))

    # ---- calls -----------------------------------------------------------------------------


def _bad_setting(payload: dict[str, Any]) -> str:
    """Why a settings body is refused ("" if it is fine) for the knobs with fixed values."""
    if "real_time" in payload and not isinstance(payload["real_time"], bool):
        return "real_time must be true or false"
    choices = {"operator_outcome": tuple(lines.OPERATOR_LEGS), "busy_mode": lines.BUSY_MODES}
    for name, allowed in choices.items():
        if name in payload and payload[name] not in allowed:
            return f"{name} must be one of {', '.join(allowed)}"
    try:
        float(payload.get("status_api_fault_seconds", 0))
        lost = float(payload.get("answer_lost", 0))
    except (TypeError, ValueError):
        return "status_api_fault_seconds and answer_lost must be numbers"
    return "" if 0 <= lost <= 1 else "answer_lost must be within 0..1"
