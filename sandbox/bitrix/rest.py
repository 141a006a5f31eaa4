"""The Bitrix24 REST engine: envelope, auth, leaky bucket, operating budget, batch.

Behaviour as docs/bitrix24.md §2-4 describes it.

Methods register themselves in `METHODS` (lower-cased: Bitrix24 method names are case-insensitive)
and run under the store lock with a `Call`; they return a result, a `Page`, or raise `BxError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox import formcodec
from sandbox.bitrix.limits import Limits
from sandbox.world import World

PAGE_SIZE = 50
BATCH_MAX = 50


class BxError(Exception):
    """A Bitrix24 error envelope; `error` may be "", as with telephony (docs/bitrix24.md §2.3)."""

    def __init__(self, error: str, description: str, status: int = 400, **extra: Any) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description, **self.extra}


AUTH_ERRORS = {
    "NO_AUTH_FOUND": "Wrong authorization data",
    "invalid_token": "The access token provided is invalid",
    "expired_token": "The access token provided has expired",
}


@dataclass
class Page:
    """A list result: lifted `next`/`total` go next to `result` (docs/bitrix24.md §2.4)."""

    items: list[Any]
    next: int | None
    total: int | None
    #: `result` is `{key: items}` when set (crm.item.list answers `{"items": [...]}`).
    key: str | None = None


@dataclass
class Call:
    world: World
    portal: dict[str, Any]
    user: dict[str, Any]
    token: str
    params: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        """Parameter lookup ignoring key case (PHP apps read both `fields` and `FIELDS`)."""
        if name in self.params:
            return self.params[name]
        lowered = name.lower()
        for key, value in self.params.items():
            if key.lower() == lowered:
                return value
        return default

    def next_id(self, kind: str) -> int:
        return self.world.store.next_id(f"{self.portal['member_id']}:{kind}")


Method = Callable[[Call], Any]
METHODS: dict[str, Method] = {}
#: Predicates (portal, name) → True when a portal lacks the method's module (timeman switch).
HIDDEN: list[Callable[[dict[str, Any], str], bool]] = []


def known(portal: dict[str, Any], name: str) -> bool:
    return name in METHODS and not any(hidden(portal, name) for hidden in HIDDEN)


class BatchFault(Exception):
    """A fault on a command inside `batch` that takes the whole HTTP answer (timeout, reset)."""

    def __init__(self, kind: str, seconds: float) -> None:
        super().__init__(kind)
        self.kind, self.seconds = kind, seconds


def method(*names: str) -> Callable[[Method], Method]:
    def register(func: Method) -> Method:
        for name in names:
            METHODS[name.lower()] = func
        return func

    return register


def paged(items: list[Any], call: Call, key: str | None = None) -> Page:
    raw = call.get("start", 0)
    try:
        start = int(raw or 0)
    except (TypeError, ValueError):
        start = 0
    if start == -1:
        # start=-1 skips the COUNT query: no `total`, no `next` (docs/bitrix24.md §2.4).
        return Page(items[:PAGE_SIZE], None, None, key)
    start = max(start, 0)
    chunk = items[start : start + PAGE_SIZE]
    more = start + PAGE_SIZE < len(items)
    return Page(chunk, start + PAGE_SIZE if more else None, len(items), key)


def iso_now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def time_block(started: float, operating: float | None, reset_at: float | None) -> dict[str, Any]:
    finished = time.time()
    block: dict[str, Any] = {
        "start": round(started, 6),
        "finish": round(finished, 6),
        "duration": round(finished - started, 6),
        "processing": round(finished - started, 6),
        "date_start": datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        "date_finish": datetime.fromtimestamp(finished).astimezone().isoformat(timespec="seconds"),
    }
    if operating is not None:
        block["operating_reset_at"] = int(reset_at or finished)
        block["operating"] = round(operating, 4)
    return block


def php_json(value: Any) -> Any:
    """Empty dicts serialize as `[]`, as PHP arrays do (docs/bitrix24.md §2.2)."""
    if isinstance(value, dict):
        return {k: php_json(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [php_json(v) for v in value]
    return value


def php_array(entries: dict[str, Any]) -> Any:
    """A PHP array keyed by batch command keys, as `json_encode` writes it (docs/bitrix24.md §2.5).

    Keys 0..n-1 in order make a JSON list, anything else an object: so `result_error` of a
    list-form `cmd` whose every command failed is a list (fast_bitrix24's recorded
    `crm_get_batch_of_two_error`), and `result` with keys "1", "2" stays an object.
    """
    if entries and list(entries) == [str(i) for i in range(len(entries))]:
        return [php_json(v) for v in entries.values()]
    return php_json(entries)


class Engine:
    def __init__(self, world: World, faults: Any = None) -> None:
        self.world = world
        self.limits = Limits()
        #: The portal's `Faults`: rules naming a method also hit it inside `batch`.
        self.faults = faults

    def run(self, name: str, params: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        """One REST call over HTTP with an OAuth access token: (status, envelope)."""
        started = time.time()
        with self.world.store.lock:
            error, portal, info = self.world.token_check(token)
        if error or portal is None or info is None:
            return 401, {"error": error, "error_description": AUTH_ERRORS[error]}
        return self.run_as(name, params, portal, info, token, started)

    def run_webhook(
        self, name: str, params: dict[str, Any], user_id: str, code: str, scope: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One call on an inbound webhook URL `/rest/<user>/<code>/<method>` (docs/bitrix24.md §2.1).

        Under a portal's own base (`scope`), another portal's webhook code is unknown.
        """
        started = time.time()
        with self.world.store.lock:
            error, portal, info = self.world.webhook_check(user_id, code)
        if not error and scope is not None and portal is not None and portal["member_id"] != scope:
            error = "NO_AUTH_FOUND"
        if error or portal is None or info is None:
            return 401, {"error": error, "error_description": AUTH_ERRORS[error]}
        return self.run_as(name, params, portal, info, "", started)

    def run_as(
        self,
        name: str,
        params: dict[str, Any],
        portal: dict[str, Any],
        info: dict[str, Any],
        token: str,
        started: float,
    ) -> tuple[int, dict[str, Any]]:
        """The call once its credentials are known: bucket, method, operating budget."""
        if not self.limits.admit(portal):
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        self.world.store.count_request(str(portal["member_id"]), _counted_as(name, params))
        if name != "batch" and not known(portal, name):
            return 404, {
                "error": "ERROR_METHOD_NOT_FOUND",
                "error_description": "Method not found!",
            }
        if name == "batch":
            return 200, self.batch(portal, info, token, params, started)
        used, reset_at = self.limits.operating(portal, name)
        if used >= float(portal["operating_limit"]):
            return 429, {
                "error": "OPERATION_TIME_LIMIT",
                "error_description": "Method is blocked due to operation time limit.",
            }
        status, body = self.execute(portal, info, token, name, params)
        self.limits.spend(portal, name)
        used, reset_at = self.limits.operating(portal, name)
        if status == 200:
            body["time"] = time_block(started, used, reset_at)
        return status, body

    def execute(
        self,
        portal: dict[str, Any],
        info: dict[str, Any],
        token: str,
        name: str,
        params: dict[str, Any],
    ) -> tuple[int, dict[str, Any]]:
        store = self.world.store
        with store.lock:
            user = next((u for u in portal["users"] if u["ID"] == info["user_id"]), None)
            if user is None or not user["ACTIVE"]:
                return 401, {
                    "error": "authorization_error",
                    "error_description": "Unable to authorize user",
                }
            call = Call(self.world, portal, user, token, {**params, "_method": name})
            try:
                result = METHODS[name](call)
            except BxError as exc:
                return exc.status, exc.body()
            finally:
                store.touch()
        if isinstance(result, Page):
            items = php_json(result.items)
            body: dict[str, Any] = {"result": {result.key: items} if result.key else items}
            if result.next is not None:
                body["next"] = result.next
            if result.total is not None:
                body["total"] = result.total
            return 200, body
        return 200, {"result": php_json(result)}

    def batch(
        self,
        portal: dict[str, Any],
        info: dict[str, Any],
        token: str,
        params: dict[str, Any],
        started: float,
    ) -> dict[str, Any]:
        """≤50 commands, per-command errors, `halt`, `$result[...]` (docs/bitrix24.md §2.5)."""
        cmd = params.get("cmd")
        if isinstance(cmd, list):
            commands = [(str(i), c) for i, c in enumerate(cmd)]
        elif isinstance(cmd, dict):
            commands = [(str(k), c) for k, c in cmd.items()]
        else:
            commands = []
        halt = str(params.get("halt", "0")).strip().lower() not in ("", "0", "false")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        # The outer `time.operating` repeats the busiest sub-command's method counter (the batch
        # itself is not accounted, limits.md; fast_bitrix24 call_single_success shows them equal).
        outer: tuple[float, float | None] = (0.0, None)
        for index, (key, command) in enumerate(commands):
            sub_started = time.time()
            if index >= BATCH_MAX:
                errors[key] = {
                    "error": "ERROR_BATCH_LENGTH_EXCEEDED",
                    "error_description": "Max batch length exceeded",
                }
            else:
                status, body, spent = self._batch_one(portal, info, token, str(command), results)
                if spent is not None and spent[0] >= outer[0]:
                    outer = spent
                if status == 200:
                    results[key] = body["result"]
                    if "total" in body:
                        totals[key] = body["total"]
                    if "next" in body:
                        nexts[key] = body["next"]
                    used, reset_at = spent if spent is not None else (None, None)
                    times[key] = time_block(sub_started, used, reset_at)
                else:
                    errors[key] = body
            if halt and key in errors:
                break
        return {
            "result": {
                "result": php_array(results),
                "result_error": php_array(errors),
                "result_total": php_array(totals),
                "result_next": php_array(nexts),
                "result_time": php_array(times),
            },
            "time": time_block(started, outer[0], outer[1]),
        }

    def _batch_one(
        self,
        portal: dict[str, Any],
        info: dict[str, Any],
        token: str,
        command: str,
        results: dict[str, Any],
    ) -> tuple[int, dict[str, Any], tuple[float, float] | None]:
        """One sub-command: (status, body, (operating, operating_reset_at) if it ran)."""
        name, _, query = command.partition("?")
        name = name.strip().lower().removesuffix(".json")
        if name in ("batch", "upload", "download"):
            return (
                405,
                {
                    "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "error_description": "Method is not allowed for batch usage",
                },
                None,
            )
        if not known(portal, name):
            return (
                404,
                {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
                None,
            )
        fault = self._batch_fault(name)
        if fault is not None:
            return fault[0], fault[1], None
        used, _ = self.limits.operating(portal, name)
        if used >= float(portal["operating_limit"]):
            return (
                429,
                {
                    "error": "OPERATION_TIME_LIMIT",
                    "error_description": "Method is blocked due to operation time limit.",
                },
                None,
            )
        # Decode first, then fill references in the decoded values: a `$result[...]` sent
        # percent-encoded (b24pysdk, fast_bitrix24's http_build_query) and one sent raw (the
        # app) both arrive as the same text (docs/bitrix24.md §2.5; issue 19).
        params = substitute(formcodec.decode(query), results)
        status, body = self.execute(portal, info, token, name, params)
        self.limits.spend(portal, name)
        return status, body, self.limits.operating(portal, name)

    def _batch_fault(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """A fault rule for this very method (not `*`) inside `batch` (docs/sandbox.md).

        Error kinds become this command's `result_error` entry, the others run on; latency
        waits; timeout, reset and down take the whole batch answer.
        """
        picked = self.faults.pick(name, exact=True) if self.faults is not None else None
        if picked is None:
            return None
        kind, seconds = picked
        if kind == "latency":
            time.sleep(seconds)
            return None
        if kind in ("timeout", "reset", "down", "expired_token"):
            raise BatchFault(kind, seconds)
        if kind == "503":
            return 503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        return 500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}


_REF = re.compile(r"\$result((?:\[[^\]]*\])+)")


def _counted_as(name: str, params: dict[str, Any]) -> str:
    if name != "batch":
        return name
    cmd = params.get("cmd")
    commands = list(cmd.values()) if isinstance(cmd, dict) else cmd if isinstance(cmd, list) else []
    first = commands[0] if commands else ""
    return f"batch:{str(first).partition('?')[0].strip().lower()}"


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace `$result[key][field]…` in every decoded string with earlier results (docs/bitrix24.md §2.5)."""
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if isinstance(value, str) and "$result[" in value:
        return _REF.sub(lambda match: _reference(match.group(1), results), value)
    return value


def _reference(path: str, results: dict[str, Any]) -> str:
    node: Any = results
    for part in re.findall(r"\[([^\]]*)\]", path):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    if node is None or isinstance(node, dict | list) or node is False:
        return ""
    return "1" if node is True else str(node)
