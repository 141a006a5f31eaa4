"""Scripted Unitalk calls: a call plays CALL_NEW → CALL_ANSWER? → CALL_END on a thread, posting
Standard-JSON webhooks (docs/unitalk.md §4.3) with the faults the settings ask for (duplicates,
reordering, a lost CALL_END, delays), and lands in the history `history/get` reads.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.unitalk.app import UnitalkApp

try:
    from zoneinfo import ZoneInfo

    KYIV: Any = ZoneInfo("Europe/Kyiv")
except Exception:
    KYIV = None

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# outcome -> (state, Q.850 cause); only ANSWER is a conversation (docs/unitalk.md §4.3).
OUTCOMES = {
    "answer": ("ANSWER", 16),
    "noanswer": ("NOANSWER", 19),
    "busy": ("BUSY", 17),
    "failed": ("FAIL", 38),
}


def local_now() -> datetime:
    return datetime.now(KYIV) if KYIV else datetime.now()


def call_start(
    app: UnitalkApp,
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
    operator: tuple[str, int, int] | None = None,
) -> dict[str, Any]:
    """Create a call and play CALL_NEW → CALL_ANSWER? → CALL_END on a thread.

    `operator` is a failed operator leg (state, cause, secondsFullTime; lines.py): the client
    leg never starts, so the call ends with that state and nobody talked.
    """
    settings = app.settings(project)
    outcome = str(outcome or settings["outcome"]).lower()
    state, cause = OUTCOMES.get(outcome, (outcome.upper(), 16))
    talk = int(talk_time if talk_time is not None else settings["talk_time"])
    ring = int(settings["ring_time"])
    if operator is not None:
        state, cause, ring = operator
    if state != "ANSWER":
        talk = 0
    call = {
        "id": app.rng.randint(1_000_000, 9_999_999),
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
    # started_at/ended_at (epoch seconds, never in an answer): when the call was live, for tests
    # that check no number was dialled twice at once.
    plan = {"state": state, "cause": cause, "talk": talk, "ring": ring, "started_at": time.time()}
    thread = threading.Thread(
        target=play, args=(app, project, call, plan, on_end), daemon=True, name="unitalk-call"
    )
    thread.start()
    return call


def _hold(event: str, plan: dict[str, Any], delay: float, settings: dict[str, Any]) -> float:
    """Seconds between `event` and the next one: `event_delay`, or the call's own times."""
    if not settings["real_time"]:
        return delay
    return float(plan["ring"] if event == "CALL_NEW" else plan["talk"])


def play(
    app: UnitalkApp, project: dict[str, Any], call: dict[str, Any], plan: dict[str, Any], on_end
):
    settings = app.settings(project)
    delay = float(settings["event_delay"])
    sequence = [("CALL_NEW", dict(call))]
    if plan["state"] == "ANSWER":
        sequence.append(("CALL_ANSWER", dict(call)))
    time.sleep(delay)
    with app.store.lock:
        dbid = app.store.next_id("unitalk_dbid")
    ended = dict(call)
    uniqueid = f"{int(time.time())}.{dbid}"
    ended.update(
        dbid=dbid,
        state=plan["state"],
        cause=plan["cause"],
        secondsTalk=plan["talk"],
        secondsFullTime=plan["talk"] + plan["ring"],
        link=(
            f"{app.base_url}/tracking/rec/{uniqueid}/{call['date'][:10]}"
            if plan["state"] == "ANSWER"
            else None
        ),
    )
    sequence.append(("CALL_END", ended))
    if settings["reorder"]:
        sequence.reverse()
    else:
        for event, body in sequence[:-1]:
            deliver(app, project, event, body, settings)
            time.sleep(_hold(event, plan, delay, settings))
        sequence = sequence[-1:]
    with app.store.lock:
        record = dict(
            ended,
            project=project["api_key"],
            uniqueid=uniqueid,
            started_at=plan["started_at"],
            ended_at=time.time(),
        )
        app.store.data["unitalk"]["calls"].append(record)
        del app.store.data["unitalk"]["calls"][:-5000]
        app.store.touch()
    for event, body in sequence:
        if event == "CALL_END" and settings["drop_call_end"]:
            continue
        deliver(app, project, event, body, settings)
    if on_end:
        on_end(ended)


def deliver(
    app: UnitalkApp,
    project: dict[str, Any],
    event: str,
    call: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    body = json.dumps({"event": event, "call": call}).encode()
    rng = random.Random(settings["seed"]) if settings["seed"] is not None else app.rng
    for hook in list(project["webhooks"]):
        if event not in hook["events"]:
            continue
        copies = 2 if rng.random() < float(settings["duplicate_rate"]) else 1
        for _ in range(copies):
            if float(settings["webhook_delay"]):
                time.sleep(float(settings["webhook_delay"]))
            status, text = app.world.http_post(
                hook["url"], body, "application/json", hook["headers"]
            )
            with app.store.lock:
                deliveries = app.store.data["unitalk"]["deliveries"]
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
                app.store.touch()
