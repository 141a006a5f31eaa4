"""Prometheus metrics: what happens inside processes, counted where it happens.

Two sources, chosen per metric by what is correct and simplest (docs/operations.md, "Metrics"):
- Events without a row — REST requests and their answers, rate-limit waits, the doors' answers —
  are counted here, in the process where they happen. Web and worker are separate processes
  (gunicorn workers, Celery's pool), so with PROMETHEUS_MULTIPROC_DIR set every process writes
  its counters to files in that folder and the scrape sums them (prometheus-client's
  multiprocess mode). Only counters and histograms are used: they sum correctly across
  processes, including ones that have exited.
- Everything that is a row — jobs, attempts, the backlog, latencies, webhook events, portals — is
  read from the database at scrape time (integration/metrics_rows.py): correct across hosts and
  restarts, and nothing to keep in step.
"""

from __future__ import annotations

from django.conf import settings

# Multiprocess mode is chosen when prometheus_client is first imported, from the environment;
# reading the settings first lets a DJANGO_ENV_FILE provide PROMETHEUS_MULTIPROC_DIR too.
_MULTIPROC_DIR = settings.PROMETHEUS_MULTIPROC_DIR

from prometheus_client import REGISTRY as _PROCESS_REGISTRY  # noqa: E402
from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

PREFIX = "unitalk_app"

provider_requests = Counter(
    f"{PREFIX}_provider_requests",
    "Requests to Bitrix24 and Unitalk by HTTP status of the answer (error: none came back).",
    ["provider", "status"],
)
provider_request_seconds = Histogram(
    f"{PREFIX}_provider_request_seconds",
    "Time to the answer of a request to Bitrix24 or Unitalk.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
rate_limit_wait_seconds = Histogram(
    f"{PREFIX}_rate_limit_wait_seconds",
    "Time a worker waited for a slot of a shared request budget (0 when there was one).",
    ["provider"],
    buckets=(0, 0.1, 0.5, 1, 2, 5, 10, 20),
)
rate_limit_refusals = Counter(
    f"{PREFIX}_rate_limit_refusals",
    "Requests not sent because the shared budget's wait was too long (the job was rescheduled).",
    ["provider"],
)
door_answers = Counter(
    f"{PREFIX}_http_answers",
    "Answers of the app's own endpoints by route and status (webhook deliveries among them).",
    ["route", "status"],
)


def provider_of(budget_key: str) -> str:
    """`bitrix:<member>` -> bitrix: the provider a rate-limit bucket belongs to."""
    return budget_key.split(":", 1)[0] or "other"


def registry() -> CollectorRegistry:
    """The counters of every process of this host (multiprocess mode) or of this one."""
    if not _MULTIPROC_DIR:
        return _PROCESS_REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def exposition(*extra: object) -> bytes:
    """The text exposition of this host's counters plus `extra` collectors."""
    target = CollectorRegistry()
    for collector in extra:
        target.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry()) + generate_latest(target)
