"""Benchmark settings: the app's settings, with the bare baseline view added to the URLs."""

from bitrixapp.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Request logs at INFO would put JSON formatting cost into both sides equally; keep them quiet.
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
