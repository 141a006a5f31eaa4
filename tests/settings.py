"""Settings for the test suite: the app's settings on fixed test values, not a developer's .env.

The developer's .env points at the live sandbox on fixed ports; tests start their own. Real
environment variables still win (CI sets DATABASE_URL, REDIS_URL, CELERY_BROKER_URL), and
processes that tests start inherit DJANGO_ENV_FILE, so they read the same values.
"""

import os
from pathlib import Path

os.environ["DJANGO_ENV_FILE"] = str(Path(__file__).resolve().parent / "test.env")

from bitrixapp.settings import *  # noqa: F403
