"""Celery application: configured from Django settings (CELERY_ namespace)."""

from __future__ import annotations

import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, celeryd_after_setup, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitrixapp.settings")

app = Celery("bitrixapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def configure_logging(**_: Any) -> None:
    """Workers and beat log through Django's LOGGING (JSON on stdout), not Celery's own."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@celeryd_after_setup.connect
def _worker_says_where_settings_came_from(**_: Any) -> None:
    from integration.core.log import settings_source_log

    settings_source_log(role="worker")


@beat_init.connect
def _beat_says_where_settings_came_from(**_: Any) -> None:
    from integration.core.log import settings_source_log

    settings_source_log(role="beat")
