"""Tasks loaded only into worker processes that tests start (`celery worker -I ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bitrixapp.celery import app


@app.task(bind=True, name="tests.fail_once", max_retries=3)
def fail_once(self: Any, journal: str) -> None:
    """Fails on its first delivery, succeeds on the retry; each attempt is journaled."""
    path = Path(journal)
    attempt = self.request.retries + 1
    with path.open("a") as fh:
        fh.write(f"attempt {attempt} pid {__import__('os').getpid()}\n")
    if attempt == 1:
        raise self.retry(exc=RuntimeError("first attempt fails on purpose"), countdown=0.2)
    with path.open("a") as fh:
        fh.write("done\n")
