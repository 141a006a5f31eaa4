"""Gunicorn's logs through the app's secret masking (docs/security.md).

The access log writes each request line, and the Unitalk webhook door's URL is its secret
(`/unitalk/webhook/<secret>/`); gunicorn's error log may quote request lines too. This logger
class masks every line of both with `bitrixapp.log.mask_secrets` before it is written.
Procfile: `gunicorn ... --access-logfile - --logger-class bitrixapp.accesslog.RedactingLogger`.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from bitrixapp.log import mask_secrets


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        return True


class RedactingLogger(Logger):
    """gunicorn's Logger whose access and error lines are masked before any handler sees them."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _Redact) for f in log.filters):
                log.addFilter(_Redact())
