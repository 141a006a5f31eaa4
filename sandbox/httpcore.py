"""The HTTP plumbing shared by the three simulators: request parsing, fault injection, serving.

Each simulator is an `App` with `handle(request) -> Response`; `serve()` runs it on a
multi-threaded stdlib server with HTTP/1.1 keep-alive so a client can push hundreds of req/s.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from sandbox import formcodec
from sandbox.store import Store

logger = logging.getLogger(__name__)

FAULT_KINDS = ("500", "502", "503", "html", "latency", "timeout", "reset", "expired_token", "down")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The JSON body; raises ValueError on malformed input."""
        return json.loads(self.body.decode("utf-8") or "null")

    def form(self) -> dict[str, Any]:
        return formcodec.decode(self.body.decode("utf-8", errors="replace"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # "reset" sends a TCP RST, "down" closes without answering.
    drop: str = ""


def json_response(data: Any, status: int = 200, **headers: str) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode(), headers=dict(headers))


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), "text/html; charset=utf-8")


class Faults:
    """Injected failures per method name ('*' = all), each with its own seeded RNG."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], dict[str, Any]] = {}

    def set(self, *, method: str, kind: str, rate: float, seed: int | None, seconds: float) -> None:
        key = (method.lower(), kind)
        with self._lock:
            if rate <= 0:
                self._rules.pop(key, None)
            else:
                self._rules[key] = {"rate": rate, "rng": random.Random(seed), "seconds": seconds}

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"method": m, "kind": k, "rate": r["rate"], "seconds": r["seconds"]}
                for (m, k), r in self._rules.items()
            ]

    def pick(self, method: str, *, exact: bool = False) -> tuple[str, float] | None:
        """The fault to apply to this call, if any fires (`exact`: ignore `*` rules)."""
        method = method.lower()
        names = (method,) if exact else ("*", method)
        with self._lock:
            for (rule_method, kind), rule in self._rules.items():
                if rule_method in names and rule["rng"].random() < rule["rate"]:
                    return kind, rule["seconds"]
        return None


def parse_fault(payload: Any) -> dict[str, Any]:
    """Validate a `/_sandbox/faults` body; raises ValueError with a readable message."""
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    kind = str(payload.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    try:
        rate = float(payload.get("rate", 1))
        seed = payload.get("seed")
        seed = int(seed) if seed is not None else None
        seconds = float(payload.get("seconds", 0.5 if kind == "latency" else 10))
    except (TypeError, ValueError) as exc:
        raise ValueError("rate, seed and seconds must be numbers") from exc
    if not 0 <= rate <= 1:
        raise ValueError("rate must be within 0..1")
    return {
        "method": str(payload.get("method", "*")),
        "kind": kind,
        "rate": rate,
        "seed": seed,
        "seconds": seconds,
    }


class App:
    """Base of one simulator. Subclasses implement `route`."""

    name = "app"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.faults = Faults()
        self.base_url = ""

    def handle(self, request: Request) -> Response:
        started = time.time()
        try:
            response = self.route(request)
        except Exception:
            logger.exception("sandbox %s crashed on %s %s", self.name, request.method, request.path)
            response = self.internal_error()
        if not request.path.startswith("/_sandbox/state"):
            self.store.log(
                {
                    "server": self.name,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "drop": response.drop,
                    "at": round(started, 3),
                    "ms": round((time.time() - started) * 1000, 1),
                }
            )
        return response

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def on_reset(self) -> None:
        """Drop runtime-only state (counters, faults) after `POST /_sandbox/reset`."""
        self.faults.clear()

    def internal_error(self) -> Response:
        return json_response({"error": "INTERNAL_SERVER_ERROR", "error_description": ""}, 500)

    def apply_fault(self, method: str) -> Response | None:
        """Simulate the picked fault; None means carry on (also after latency)."""
        picked = self.faults.pick(method)
        if not picked:
            return None
        return self.fault_kind(*picked)

    def fault_kind(self, kind: str, seconds: float) -> Response | None:
        """The answer of one fault kind (None for latency, after waiting)."""
        if kind == "latency":
            time.sleep(seconds)
            return None
        if kind == "timeout":
            time.sleep(seconds)
            return Response(drop="down")
        if kind in ("reset", "down"):
            return Response(drop=kind)
        if kind == "html":
            return html_response(
                "<html><body><h1>Service temporarily unavailable</h1></body></html>"
            )
        if kind == "502":
            return html_response("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
        return self.fault_response(kind)

    def fault_response(self, kind: str) -> Response:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without this Nagle adds ~40 ms per answer.
    disable_nagle_algorithm = True
    server_version = "sandbox"
    app: App

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.app.name, *args)

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=split.path,
            query=formcodec.decode(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        response = self.app.handle(request)
        if response.drop:
            self._drop(response.drop)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _drop(self, how: str) -> None:
        self.close_connection = True
        if how == "reset":
            # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def serve(app: App, host: str, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Bind `app` on host:port (0 = free port) and serve it from a daemon thread."""
    handler = type(f"{app.name}Handler", (_Handler,), {"app": app})
    server = _Server((host, port), handler)
    app.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), daemon=True, name=f"sandbox-{app.name}"
    )
    thread.start()
    return server, thread
