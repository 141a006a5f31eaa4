"""Settings for the Unitalk ↔ Bitrix24 app, read from the environment only.

DJANGO_SETTINGS_MODULE is `bitrixapp.settings` everywhere (manage.py, wsgi, celery, tests, bench):
this package. Its parts, in the order they load:
- environment.py: which env file is read, the writable folder (APP_VAR_DIR), secrets that are
  fatal when missing with debug off (docs/operations.md, "Configuration");
- base.py: Django, database, caches, static files, security, outbound HTTP, Celery, logging;
- capabilities.py: each capability's tunables, apps and beat entries.
"""

from bitrixapp.settings.base import *  # noqa: F403
from bitrixapp.settings.capabilities import *  # noqa: F403
from bitrixapp.settings.environment import *  # noqa: F403
