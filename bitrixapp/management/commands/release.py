"""The release step: migrate, then collect static files, saying so in the app's JSON log lines.

    python manage.py release              # the Procfile's release, the systemd release unit
    python manage.py release --no-static  # an image that collected its static files at build

Every other process writes one JSON object per line (docs/operations.md, "Log format"); Django's
own `migrate` and `collectstatic` print plain text ("Operations to perform: ..."). So the two
commands run here with their output captured, and what they said goes out as log records: one
line per migration applied, a summary, and a failure as an ERROR record with the traceback in
its `exc` field, exit status 1.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

logger = logging.getLogger("bitrixapp.release")


def _applied() -> set[tuple[str, str]]:
    recorder = MigrationRecorder(connections["default"])
    if not recorder.has_table():
        return set()
    return set(recorder.applied_migrations())


class Command(BaseCommand):
    help = "Apply migrations and collect static files (the release step), logging JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-static", action="store_true", help="skip collectstatic (done at image build)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = io.StringIO()
        try:
            before = _applied()
            call_command("migrate", interactive=False, verbosity=1, stdout=out, stderr=out)
            applied = sorted(_applied() - before)
            for app, name in applied:
                logger.info("migration applied", extra={"app": app, "migration": name})
            if not options["no_static"]:
                static = io.StringIO()
                call_command("collectstatic", interactive=False, verbosity=1, stdout=static)
                # Its one summary line: "N static files copied to '...', M unmodified."
                logger.info("static files collected", extra={"detail": static.getvalue().strip()})
        except Exception:
            logger.exception("release failed", extra={"output": out.getvalue()[-4000:]})
            sys.exit(1)
        logger.info("release done", extra={"migrations_applied": len(applied)})
