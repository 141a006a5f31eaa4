"""Metrics read from the database at scrape time: jobs, attempts, backlog, latencies, webhook
events, portals (integration/core/metrics.py says why these come from rows).

Rows are never pruned by the app, so counts of rows that only grow (attempts, finished calls)
are exposed as counters and histograms — except a campaign's succeeded `campaign.tick` jobs,
which its next tick prunes (docs/campaigns.md, "Tick rows"): that kind counts kept rows only.
Counts by current state are gauges. Each scrape runs a handful of aggregate queries; the latency
histograms scan the finished calls and dial jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bitrixapp.models import BitrixEvent, Portal
from integration.backlog import jobs_backlog
from integration.core.metrics import PREFIX
from integration.models import Job, JobAttempt

# Seconds. A click-to-call is worth watching from ~1 s (the user waits on the phone); a call end
# reaching the CRM within a minute is normal, retries after outages take minutes to hours.
CLICK_BUCKETS = (0.5, 1, 2, 3, 5, 10, 30, 60, 300)
CRM_BUCKETS = (1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600)
KIND_DIAL = "call.dial"  # integration/calls/dial.py (a provider-neutral name, not imported)


def _histogram(
    name: str, doc: str, rows: QuerySet[Any], start: str, end: str, buckets: tuple[float, ...]
) -> HistogramMetricFamily:
    span = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    counts = rows.annotate(span=span).aggregate(
        count=Count("pk"),
        total=Sum("span"),
        **{
            f"le{i}": Count("pk", filter=Q(span__lte=timedelta(seconds=b)))
            for i, b in enumerate(buckets)
        },
    )
    metric = HistogramMetricFamily(name, doc)
    total = counts["total"]
    metric.add_metric(
        [],
        buckets=[(str(float(b)), counts[f"le{i}"]) for i, b in enumerate(buckets)]
        + [("+Inf", counts["count"])],
        sum_value=max(0.0, total.total_seconds()) if total else 0.0,
    )
    return metric


class RowsCollector:
    """A prometheus-client collector over the app's tables."""

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._backlog()
        yield from self._latencies()
        yield from self._webhooks()
        portals = GaugeMetricFamily(f"{PREFIX}_portals", "Portals by state.", labels=["state"])
        counted = dict(Portal.objects.values_list("status").annotate(n=Count("pk")))
        for state in Portal.Status.values:
            portals.add_metric([state], counted.get(state, 0))
        yield portals

    def _jobs(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs",
            "Jobs by kind and state (dead: failed for good).",
            labels=["kind", "state"],
        )
        for kind, state, n in Job.objects.values_list("kind", "state").annotate(n=Count("pk")):
            jobs.add_metric([kind, state], n)
        yield jobs
        attempts = CounterMetricFamily(
            f"{PREFIX}_job_attempts",
            "Job attempts by kind, outcome and decision (decision retry: a retry was scheduled;"
            " outcome abandoned: its worker died).",
            labels=["kind", "outcome", "decision"],
        )
        rows = JobAttempt.objects.values_list("job__kind", "outcome", "decision").annotate(
            n=Count("pk")
        )
        for kind, outcome, decision, n in rows:
            attempts.add_metric([kind, outcome, decision or ""], n)
        yield attempts

    def _backlog(self) -> Iterator[Metric]:
        now = timezone.now()
        due = GaugeMetricFamily(
            f"{PREFIX}_queue_due_jobs", "Jobs due and not yet running, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_due_seconds",
            "How long the oldest due job of the queue has waited (0: none waiting).",
            labels=["queue"],
        )
        for queue, lane in jobs_backlog(now=now).items():
            due.add_metric([queue], lane.due)
            oldest.add_metric([queue], lane.oldest_due_s(now))
        yield due
        yield oldest

    def _latencies(self) -> Iterator[Metric]:
        from integration.calls.models import CallSync

        yield _histogram(
            f"{PREFIX}_click_to_call_seconds",
            "From a click-to-call reaching the app to Unitalk accepting the dial.",
            Job.objects.filter(
                kind=KIND_DIAL, state=Job.State.SUCCEEDED, finished_at__isnull=False
            ),
            "created_at",
            "finished_at",
            CLICK_BUCKETS,
        )
        yield _histogram(
            f"{PREFIX}_call_end_to_crm_seconds",
            "From a call's end at Unitalk to the call finished in the Bitrix24 CRM.",
            CallSync.objects.filter(finished_at__isnull=False, call__ended_at__isnull=False),
            "call__ended_at",
            "finished_at",
            CRM_BUCKETS,
        )

    def _webhooks(self) -> Iterator[Metric]:
        from integration.unitalk.models import UnitalkEvent

        events = CounterMetricFamily(
            f"{PREFIX}_webhook_events",
            "Webhook deliveries stored, by provider and processing state (duplicates: repeats"
            " of a stored delivery).",
            labels=["provider", "state"],
        )
        for state, n in UnitalkEvent.objects.values_list("state").annotate(n=Count("pk")):
            events.add_metric(["unitalk", state], n)
        repeats = UnitalkEvent.objects.aggregate(n=Sum("duplicates"))["n"] or 0
        events.add_metric(["unitalk", "duplicates"], repeats)
        for state, n in BitrixEvent.objects.values_list("state").annotate(n=Count("pk")):
            events.add_metric(["bitrix", state], n)
        yield events
