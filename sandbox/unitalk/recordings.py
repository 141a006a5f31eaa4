"""Call recordings at `/tracking/rec/<uniqueid>/<date>`: a real 1 s WAV for answered calls, with
the `rec_auth` and `rec_expiry` settings (docs/unitalk.md §3.7, §7).
"""

from __future__ import annotations

import io
import math
import struct
import time
import wave
from typing import TYPE_CHECKING

from sandbox.httpcore import Request, Response
from sandbox.unitalk.api import error

if TYPE_CHECKING:
    from sandbox.unitalk.app import UnitalkApp


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


def recording(app: UnitalkApp, request: Request, uniqueid: str) -> Response:
    with app.store.lock:
        call = next(
            (c for c in app.store.data["unitalk"]["calls"] if c.get("uniqueid") == uniqueid),
            None,
        )
        project = app.store.data["unitalk"]["projects"].get(call["project"]) if call else None
    if call is None or call["state"] != "ANSWER":
        return error("Record not found", 404)
    settings = app.settings(project)
    if settings["rec_auth"] and app.authenticate(request) is not project:
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
