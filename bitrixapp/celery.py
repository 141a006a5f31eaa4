"""Celery application: configured from Django settings (CELERY_ namespace).

Worker and beat log JSON lines like every other process (docs/operations.md, "Logs"): Celery's
own logging is replaced by Django's LOGGING (`setup_logging`), and the start-up banners, which
Celery prints as text, become one JSON line each with what the banner said.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import logging.config
import os
import sys
from datetime import UTC, datetime
from functools import cached_property
from typing import IO, Any

import celery.apps.worker
from celery import Celery
from celery.apps.beat import Beat
from celery.apps.worker import Worker
from celery.signals import (
    beat_init,
    celeryd_after_setup,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
)

from integration.core.log import JsonFormatter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitrixapp.settings")

logger = logging.getLogger("bitrixapp.celery")

# Python warnings raised before LOGGING is applied (Celery's SecurityWarning when started as root,
# docs/operations.md "Running as a non-root user") are JSON lines too.
logging.captureWarnings(True)
_early_warnings = logging.StreamHandler(sys.stdout)
_early_warnings.setFormatter(JsonFormatter())
logging.getLogger("py.warnings").addHandler(_early_warnings)
logging.getLogger("py.warnings").propagate = False


def _say_json(msg: str, f: IO[str] = sys.__stdout__) -> None:  # type: ignore[assignment]
    """Celery's `safe_say` (shutdown notices, written from signal handlers with a raw os.write),
    as a JSON line: same raw write, no logging locks."""
    line = {
        "time": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "logger": "celery.apps.worker",
        "message": msg.strip(),
    }
    with contextlib.suppress(OSError, ValueError, AttributeError):  # best effort, as Celery's
        os.write(f.fileno(), (json.dumps(line) + "\n").encode())


setattr(celery.apps.worker, "safe_say", _say_json)  # noqa: B010 (celery-types omits it)


class JsonBannerWorker(Worker):
    def emit_banner(self) -> None:
        me: Any = self  # attributes set by Celery at run time, not in the stubs
        logger.info(
            "worker starting",
            extra={
                "hostname": me.hostname,
                "concurrency": me.concurrency,
                # "prefork" or "thread" (the interactive lane's, docs/pipeline.md "Lanes")
                "pool": str(me.pool_cls.__module__).rsplit(".", 1)[-1],
                "queues": sorted(me.app.amqp.queues.consume_from or me.app.amqp.queues),
                "broker": me.app.connection().as_uri(),  # password masked by kombu
            },
        )


class JsonBannerBeat(Beat):
    def run(self) -> None:
        self.quiet = True  # the text banners; one JSON line below instead
        super().run()

    def setup_logging(self, colorize: bool | None = None) -> None:
        super().setup_logging(colorize=colorize)
        me: Any = self
        logger.info(
            "beat starting",
            extra={
                "schedule_file": str(me.schedule),
                "broker": me.app.connection().as_uri(),
                "max_interval_s": me.max_interval,
            },
        )


class App(Celery):
    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self(JsonBannerWorker)

    @cached_property
    def Beat(self) -> Any:
        return self.subclass_with_self(JsonBannerBeat)


app = App("bitrixapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connects the worker's heartbeat thread to worker_ready (beat's is its scheduler class).
from bitrixapp import heartbeats as _heartbeats  # noqa: E402, F401


@setup_logging.connect
def configure_logging(**_: Any) -> None:
    """Workers and beat log through Django's LOGGING (JSON on stdout), not Celery's own."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@task_prerun.connect
@task_postrun.connect
def _database_connections_checked(**_: Any) -> None:
    """Around every task what Django does around every request: a connection that broke or
    outlived CONN_MAX_AGE is closed, the others are kept (docs/pipeline.md, "Connections").

    Celery's Django fixup closes every connection before and after each task unless
    CELERY_DB_REUSE_MAX is set (bitrixapp/settings/base.py), and a new PostgreSQL
    connection for every job was a tenth of the interactive worker's time (bench/latency.py).
    """
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
@worker_process_init.connect
@beat_init.connect
def _startup_objects_frozen(**_: Any) -> None:
    """What was loaded at start (Django, Celery, the app: about 100,000 objects) goes out of
    the garbage collector's reach: a full collection walked all of it, 30-90 ms with every
    thread stopped, at random moments under load (docs/pipeline.md, "Pauses"). Prefork
    children freeze after their own start, thread pools in the worker's process."""
    gc.freeze()


@celeryd_after_setup.connect
def _worker_says_where_settings_came_from(**_: Any) -> None:
    from integration.core.log import settings_source_log

    settings_source_log(role="worker")


@beat_init.connect
def _beat_says_where_settings_came_from(**_: Any) -> None:
    from integration.core.log import settings_source_log

    settings_source_log(role="beat")
