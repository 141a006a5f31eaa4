"""The Unitalk cloud PBX simulator (docs/unitalk.md §7): `/api/<path>` (alias `/tracking/api/...`),
scripted calls that post Standard-JSON webhooks, history, users, autodialer, recordings.

Unitalk answers errors as HTTP 200 + `{"status":"Error","message":...}` (docs/unitalk.md §2.4); the
`auth_status` setting switches "Authorization invalid" to HTTP 401 for robustness tests.
Every invented detail (action names, overload wording, outcome causes) sits in a table here.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import secrets
import struct
import threading
import time
import wave
from collections import deque
from datetime import datetime
from typing import Any

from sandbox.control import control_common, control_payload
from sandbox.httpcore import App, Request, Response, json_response
from sandbox.world import World

try:
    from zoneinfo import ZoneInfo

    KYIV: Any = ZoneInfo("Europe/Kyiv")
except Exception:
    KYIV = None

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

DEFAULT_SETTINGS: dict[str, Any] = {
    "auth_status": 200,  # HTTP status of "Authorization invalid": 200 (real) or 401
    "outcome": "answer",  # answer | noanswer | busy | failed (or a raw state such as CHANUNAVAIL)
    "talk_time": 5,  # secondsTalk reported for answered calls
    "ring_time": 3,  # secondsFullTime - secondsTalk
    "event_delay": 0.2,  # wall-clock seconds between CALL_NEW, CALL_ANSWER, CALL_END
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
}

# outcome -> (state, Q.850 cause); only ANSWER is a conversation (docs/unitalk.md §4.3).
OUTCOMES = {
    "answer": ("ANSWER", 16),
    "noanswer": ("NOANSWER", 19),
    "busy": ("BUSY", 17),
    "failed": ("FAIL", 38),
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


def error(message: str, status: int = 200, data: Any = None) -> Response:
    body: dict[str, Any] = {"status": "Error", "message": message}
    if data is not None:
        body["data"] = data
    return json_response(body, status)


def success(**extra: Any) -> Response:
    return json_response({"status": "Success", **extra})


def local_now() -> datetime:
    return datetime.now(KYIV) if KYIV else datetime.now()


def make_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A small valid PCM WAV (440 Hz tone) for recordings."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(seconds * rate))
        )
        out.writeframes(frames)
    return buffer.getvalue()


RECORDING = make_wav()


class UnitalkApp(App):
    name = "unitalk"

    def __init__(self, world: World, *, default_key: str | None = None) -> None:
        super().__init__(world.store)
        self.world = world
        self.default_key = default_key
        self._budget: dict[str, deque[tuple[float, int]]] = {}
        self._budget_lock = threading.Lock()
        self._rng = random.Random()
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
        users = payload.get("users") or DEFAULT_USERS
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
            return self.recording(request, match.group(1))
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
            call = self.call_start(
                project,
                direction="IN",
                caller=number,
                callee=[line],
                meta=payload.get("meta"),
                outcome=payload.get("outcome"),
                talk_time=payload.get("talk_time"),
                outer=payload.get("outer_number"),
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
    def call_start(
        self,
        project: dict[str, Any],
        *,
        direction: str,
        caller: str,
        callee: list[str],
        meta: Any = None,
        outcome: Any = None,
        talk_time: Any = None,
        outer: Any = None,
        source: str = "REGULAR",
        on_end: Any = None,
    ) -> dict[str, Any]:
        """Create a call and play CALL_NEW → CALL_ANSWER? → CALL_END on a thread."""
        settings = self.settings(project)
        outcome = str(outcome or settings["outcome"]).lower()
        state, cause = OUTCOMES.get(outcome, (outcome.upper(), 16))
        talk = int(talk_time if talk_time is not None else settings["talk_time"])
        if state != "ANSWER":
            talk = 0
        call = {
            "id": self._rng.randint(1_000_000, 9_999_999),
            "from": caller,
            "to": callee,
            "lastGroupName": settings["group_name"],
            "outerNumber": str(outer or settings["outer_number"]),
            "direction": direction,
            "date": local_now().strftime(DATE_FORMAT),
            "callback": False,
            "state": None,
            "source": source,
            "meta": None if meta is None else str(meta),
        }
        plan = {"state": state, "cause": cause, "talk": talk, "ring": int(settings["ring_time"])}
        thread = threading.Thread(
            target=self._play, args=(project, call, plan, on_end), daemon=True, name="unitalk-call"
        )
        thread.start()
        return call

    def _play(self, project: dict[str, Any], call: dict[str, Any], plan: dict[str, Any], on_end):
        settings = self.settings(project)
        delay = float(settings["event_delay"])
        sequence = [("CALL_NEW", dict(call))]
        if plan["state"] == "ANSWER":
            sequence.append(("CALL_ANSWER", dict(call)))
        time.sleep(delay)
        with self.store.lock:
            dbid = self.store.next_id("unitalk_dbid")
        ended = dict(call)
        uniqueid = f"{int(time.time())}.{dbid}"
        ended.update(
            dbid=dbid,
            state=plan["state"],
            cause=plan["cause"],
            secondsTalk=plan["talk"],
            secondsFullTime=plan["talk"] + plan["ring"],
            link=(
                f"{self.base_url}/tracking/rec/{uniqueid}/{call['date'][:10]}"
                if plan["state"] == "ANSWER"
                else None
            ),
        )
        sequence.append(("CALL_END", ended))
        if settings["reorder"]:
            sequence.reverse()
        else:
            for event, body in sequence[:-1]:
                self.deliver(project, event, body, settings)
                time.sleep(delay)
            sequence = sequence[-1:]
        with self.store.lock:
            record = dict(
                ended, project=project["api_key"], uniqueid=uniqueid, ended_at=time.time()
            )
            self.store.data["unitalk"]["calls"].append(record)
            del self.store.data["unitalk"]["calls"][:-5000]
            self.store.touch()
        for event, body in sequence:
            if event == "CALL_END" and settings["drop_call_end"]:
                continue
            self.deliver(project, event, body, settings)
        if on_end:
            on_end(ended)

    def deliver(
        self, project: dict[str, Any], event: str, call: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        body = json.dumps({"event": event, "call": call}).encode()
        rng = random.Random(settings["seed"]) if settings["seed"] is not None else self._rng
        for hook in list(project["webhooks"]):
            if event not in hook["events"]:
                continue
            copies = 2 if rng.random() < float(settings["duplicate_rate"]) else 1
            for _ in range(copies):
                if float(settings["webhook_delay"]):
                    time.sleep(float(settings["webhook_delay"]))
                status, text = self.world.http_post(
                    hook["url"], body, "application/json", hook["headers"]
                )
                with self.store.lock:
                    deliveries = self.store.data["unitalk"]["deliveries"]
                    deliveries.append(
                        {
                            "event": event,
                            "call_id": call["id"],
                            "url": hook["url"],
                            "status": status,
                            "error": text if status is None else "",
                            "at": time.time(),
                        }
                    )
                    del deliveries[:-2000]
                    self.store.touch()

    def recording(self, request: Request, uniqueid: str) -> Response:
        with self.store.lock:
            call = next(
                (c for c in self.store.data["unitalk"]["calls"] if c.get("uniqueid") == uniqueid),
                None,
            )
            project = self.store.data["unitalk"]["projects"].get(call["project"]) if call else None
        if call is None or call["state"] != "ANSWER":
            return error("Record not found", 404)
        settings = self.settings(project)
        if settings["rec_auth"] and self.authenticate(request) is not project:
            return error("Authorization invalid", 401)
        expiry = float(settings["rec_expiry"])
        if expiry and time.time() > call["ended_at"] + expiry:
            return error("Record expired", 404)
        return Response(
            200,
            RECORDING,
            "audio/wav",
            {"Content-Disposition": f'attachment; filename="{uniqueid}.wav"'},
        )


# ---- API methods ------------------------------------------------------------------------------
def _users(project: dict[str, Any]) -> list[dict[str, Any]]:
    return list(project["users"])


def api_direct_call(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    sip = str(payload.get("sip") or "")
    number = "".join(ch for ch in str(payload.get("number") or "") if ch.isdigit())
    if not sip or not any(str(u["line"]) == sip for u in _users(project)):
        return error("Inner line not found")  # UNCONFIRMED wording
    if not number:
        return error("Number is empty")
    app.call_start(project, direction="OUT", caller=sip, callee=[number], meta=payload.get("meta"))
    return success()


def api_originate(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    if str(payload.get("messageType") or "").upper() == "SMS":
        if not payload.get("to") or not payload.get("text"):
            return error("to and text are required")
        return success()
    phone = "".join(ch for ch in str(payload.get("phone") or "") if ch.isdigit())
    if not phone:
        return error("Phone is null")
    meta = payload.get("meta")
    if meta is not None and (not isinstance(meta, str) or len(meta) > 1000):
        return error("Meta must be a string up to 1000 characters")
    outer = payload.get("outerLine")
    app.call_start(
        project,
        direction="OUT",
        caller=str(outer or app.settings(project)["outer_number"]),
        callee=[phone],
        meta=meta,
        outer=outer,
        source="API",
    )
    return success()


def _parse_date(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), DATE_FORMAT)
    except ValueError:
        return None


def api_history(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    if not payload:
        return error("Query null")
    date_from = _parse_date(payload.get("dateFrom"))
    if date_from is None:
        return error("Wrong FROM date")
    date_to = _parse_date(payload.get("dateTo"))
    if date_to is None:
        return error("Wrong TO date")
    settings = app.settings(project)
    cap = int(settings["history_cap"])
    try:
        raw_limit = payload.get("limit")
        limit = cap if raw_limit is None else int(raw_limit)
        offset = int(payload.get("offset") or 0)
    except (TypeError, ValueError):
        return error("Wrong limit or offset")
    if offset < 0:
        return error("Offset is less than 0")
    if limit < 1:
        return error(f"Limit range is 1-{cap}")
    flt = payload.get("filter") or {}
    if not isinstance(flt, dict):
        return error("Wrong filter")
    with app.store.lock:
        calls = [
            c
            for c in app.store.data["unitalk"]["calls"]
            if c["project"] == project["api_key"]
            and date_from <= datetime.strptime(c["date"], DATE_FORMAT) <= date_to
        ]
    calls = [c for c in calls if _history_match(c, flt, calls)]
    calls.sort(key=lambda c: (c["date"], c["dbid"]), reverse=True)
    page = calls[offset : offset + min(limit, cap)]
    warning = None
    if limit > cap and settings["history_warning"] and len(calls) - offset > cap:
        warning = f"Result is limited to {cap} calls"
    hidden = {"project", "uniqueid", "ended_at"}
    return json_response(
        {
            "count": len(calls),
            "calls": [{k: v for k, v in c.items() if k not in hidden} for c in page],
            "warning": warning,
        }
    )


def _history_match(call: dict[str, Any], flt: dict[str, Any], calls: list[dict[str, Any]]) -> bool:
    if "direction" in flt and call["direction"] != str(flt["direction"]).upper():
        return False
    if "answered" in flt and (call["state"] == "ANSWER") != bool(flt["answered"]):
        return False
    if "lost" in flt:
        lost = (
            call["direction"] == "IN"
            and call["state"] != "ANSWER"
            and not any(
                c["direction"] == "OUT"
                and c["state"] == "ANSWER"
                and call["from"] in c["to"]
                and c["date"] > call["date"]
                for c in calls
            )
        )
        if lost != bool(flt["lost"]):
            return False
    for key in ("from", "outerNumber"):
        if key in flt and isinstance(flt[key], list) and call[key] not in flt[key]:
            return False
    wanted_to = flt.get("to")
    return not isinstance(wanted_to, list) or bool(set(call["to"]) & set(wanted_to))


def api_users(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    return json_response({"users": _users(project)})


# ---- autodialer (every action name in this one table; only GET_WITH_DATA is confirmed) --------
def _dialers(app: UnitalkApp, project: dict[str, Any]) -> dict[str, Any]:
    dialers = app.store.data["unitalk"]["autodialers"].setdefault(project["api_key"], {})
    if not dialers:
        dialers["1"] = {"id": 1, "name": "Default autodialer", "state": "STOPPED", "numbers": []}
    return dialers


def _dialer(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]):
    return _dialers(app, project).get(str(payload.get("id") or ""))


def ad_get_with_data(app, project, payload):
    with app.store.lock:
        dialers = list(_dialers(app, project).values())
    return json_response(
        {
            "autodialers": dialers,
            "audios": [{"id": 1, "name": "greeting.wav", "type": "API"}],
            "outerLines": [app.settings(project)["outer_number"]],
            "groups": [{"id": 1, "name": app.settings(project)["group_name"]}],
        }
    )


def ad_add_numbers(app, project, payload):
    numbers = payload.get("numbers")
    if not isinstance(numbers, list) or not numbers:
        return error("Numbers are empty")
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        for item in numbers:
            phone = item.get("phone") if isinstance(item, dict) else item
            meta = item.get("meta") if isinstance(item, dict) else None
            dialer["numbers"].append({"phone": str(phone), "meta": meta, "state": "WAITING"})
        app.store.touch()
    return success(added=len(numbers))


def ad_delete_numbers(app, project, payload):
    phones = {str(p) for p in payload.get("numbers") or []}
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["numbers"] = [n for n in dialer["numbers"] if n["phone"] not in phones]
        app.store.touch()
    return success()


def ad_start(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["state"] = "RUNNING"
        waiting = [n for n in dialer["numbers"] if n["state"] == "WAITING"]
        for number in waiting:
            number["state"] = "CALLING"
        app.store.touch()

    def ended(number: dict[str, Any]):
        def mark(call: dict[str, Any]) -> None:
            with app.store.lock:
                number["state"] = call["state"]
                number["callId"] = call["id"]
                if all(n["state"] not in ("WAITING", "CALLING") for n in dialer["numbers"]):
                    dialer["state"] = "FINISHED"
                app.store.touch()

        return mark

    for number in waiting:
        app.call_start(
            project,
            direction="OUT",
            caller=app.settings(project)["outer_number"],
            callee=[number["phone"]],
            meta=number["meta"],
            source="AUTODIAL",
            on_end=ended(number),
        )
    return success(calling=len(waiting))


def ad_stop(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        dialer["state"] = "STOPPED"
        app.store.touch()
    return success()


def ad_calls_history(app, project, payload):
    with app.store.lock:
        dialer = _dialer(app, project, payload)
        if dialer is None:
            return error("Autodialer not found")
        items = [dict(n) for n in dialer["numbers"]]
    return json_response({"items": items})


AUTODIAL_ACTIONS = {
    "GET_WITH_DATA": ad_get_with_data,
    "ADD_NUMBERS": ad_add_numbers,
    "DELETE_NUMBERS": ad_delete_numbers,
    "START": ad_start,
    "STOP": ad_stop,
    "GET_CALLS_HISTORY": ad_calls_history,
}


def api_autodial(app: UnitalkApp, project: dict[str, Any], payload: dict[str, Any]) -> Response:
    action = AUTODIAL_ACTIONS.get(str(payload.get("action") or "").upper())
    if action is None:
        return error("Unknown action", 200, sorted(AUTODIAL_ACTIONS))
    return action(app, project, payload)


API = {
    "phones/directCall": api_direct_call,
    "calls/originateNew": api_originate,
    "history/get": api_history,
    "users/list": api_users,
    "autodial/action": api_autodial,
}
