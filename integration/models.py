"""Durable work and what people must be told.

`Job` is the unit of outbound work: every Unitalk or Bitrix24 call is made by a job, every job
leaves a row per attempt, and a job that cannot finish stays visible (dead or paused) with its
reason. `Notification` is something a person must hear about, stored before it is delivered.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Job(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        RETRYING = "retrying", "retrying"
        SUCCEEDED = "succeeded", "succeeded"
        DEAD = "dead", "dead"
        PAUSED = "paused", "paused"
        CANCELLED = "cancelled", "cancelled"

    OPEN_STATES = (State.PENDING, State.RUNNING, State.RETRYING, State.PAUSED)

    kind = models.CharField(max_length=64)
    portal = models.ForeignKey(
        "bitrixapp.Portal", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    subject = models.CharField(
        max_length=128, blank=True, help_text="what it is about, e.g. call:42"
    )
    idempotency_key = models.CharField(max_length=255, unique=True)
    payload = models.JSONField(default=dict, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while an attempt runs; an expired lease means the worker died mid-attempt.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When it was last handed to the broker; the dispatcher re-sends only stale hand-offs.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    pause_key = models.CharField(max_length=32, blank=True)
    last_error_class = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="job_due"),
            models.Index(fields=["portal", "state"], name="job_portal_state"),
            models.Index(fields=["kind", "state"], name="job_kind_state"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} [{self.state}]"


class JobAttempt(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        # Its worker died mid-attempt; closed by the worker that took the job over
        # (integration/lease.py).
        ABANDONED = "abandoned", "abandoned"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_class = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    decision = models.CharField(max_length=16, blank=True)
    delay_s = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="job_attempt_number_unique")
        ]
        ordering = ["job_id", "number"]


class Notification(models.Model):
    """Something a person must be told: stored first, then delivered (Bitrix24, e-mail)."""

    class Severity(models.TextChoices):
        INFO = "info", "info"
        WARNING = "warning", "warning"
        ERROR = "error", "error"
        CRITICAL = "critical", "critical"

    class Audience(models.TextChoices):
        ADMINS = "admins", "portal admins"
        USER = "user", "one user"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="notifications"
    )
    audience = models.CharField(max_length=8, choices=Audience.choices, default=Audience.ADMINS)
    user_id = models.PositiveIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.ERROR)
    # Repeats of the same problem share a tag: they update one row (and replace one message
    # in Bitrix24 via im.notify TAG) instead of piling up.
    tag = models.CharField(max_length=128)
    # `kind` is the message code; `params` fill it in the reader's language when shown
    # (integration/core/messages.py). `message` is the technical detail: logs and "details" only.
    message = models.TextField()
    params = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "tag"],
                condition=models.Q(resolved_at__isnull=True),
                name="notification_open_tag_unique",
            )
        ]
        ordering = ["-updated_at"]
