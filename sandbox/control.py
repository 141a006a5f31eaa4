"""Control endpoints every simulator has: `POST /_sandbox/reset`, `POST /_sandbox/faults`,
`GET /_sandbox/state`. Server-specific ones live with each simulator."""

from __future__ import annotations

from typing import Any

from sandbox.httpcore import App, Request, Response, json_response, parse_fault


def control_payload(request: Request) -> dict[str, Any] | Response:
    """The JSON object a control POST carries (empty body: {}), or the error to answer."""
    if request.method != "POST":
        return json_response({"error": "method not allowed"}, 405)
    try:
        payload = request.json() if request.body else {}
    except ValueError:
        return json_response({"error": "malformed JSON"}, 400)
    if not isinstance(payload, dict):
        return json_response({"error": "body must be a JSON object"}, 400)
    return payload


def control_common(app: App, request: Request) -> Response:
    """Control endpoints every server has: reset, faults, state."""
    path = request.path.rstrip("/")
    if path == "/_sandbox/state" and request.method == "GET":
        return json_response(state_view(app.store.snapshot(), request))
    payload = control_payload(request)
    if isinstance(payload, Response):
        return payload
    if path == "/_sandbox/reset":
        app.store.reset()
        for other in getattr(app, "siblings", [app]):
            other.on_reset()
        return json_response({"ok": True})
    if path == "/_sandbox/faults":
        try:
            fault = parse_fault(payload)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        app.faults.set(**fault)
        return json_response({"ok": True, "faults": app.faults.listing()})
    return json_response({"error": f"unknown control endpoint {path}"}, 404)


def state_view(data: dict[str, Any], request: Request) -> dict[str, Any]:
    """The state as tests want it; `?log=N` limits the request log (default 200)."""
    limit = (
        int(str(request.query.get("log", "200")) or 200)
        if str(request.query.get("log", "200")).isdigit()
        else 200
    )
    data["log"] = data["log"][-limit:] if limit else []
    data.pop("access_tokens", None)
    data.pop("refresh_tokens", None)
    data.pop("codes", None)
    return data
