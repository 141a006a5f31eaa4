"""Unitalk side of a portal: its connection (API key, webhook secret), received webhook events,
and the mapping of Bitrix24 users to Unitalk inner lines."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone as djtz

from integration.core.crypto import EncryptedTextField
from integration.core.log import mask


def _default_timezone() -> str:
    return settings.UNITALK_DEFAULT_TIMEZONE


class UnitalkConnection(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "ok"
        # Saved, not yet answered by Unitalk: the save queues a connection test that settles it.
        UNCHECKED = "unchecked", "not checked yet"
        CREDENTIALS_INVALID = "credentials_invalid", "API key rejected"
        UNREACHABLE = "unreachable", "Unitalk unreachable"

    portal = models.OneToOneField(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="unitalk"
    )
    api_key = EncryptedTextField(blank=True)
    # sha256 of the key: names its shared rate budget and lets a stale worker see that the key
    # it was refused with is no longer the stored one.
    api_key_digest = models.CharField(max_length=64, blank=True)
    # The secret in the webhook URL: kept encrypted to show the URL again, looked up by digest.
    webhook_secret = EncryptedTextField()
    webhook_secret_digest = models.CharField(max_length=64, unique=True)
    # When true, deliveries must also carry the secret in UNITALK_WEBHOOK_SECRET_HEADER.
    webhook_header_required = models.BooleanField(default=False)
    # Zone of Unitalk's zone-less timestamps for this project.
    timezone = models.CharField(max_length=64, default=_default_timezone)

    status = models.CharField(max_length=24, choices=Status.choices, default=Status.OK)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=djtz.now)
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    # history/get has been compared with our calls up to here (UTC).
    reconciled_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"unitalk {self.portal_id} key {self.api_key_masked} [{self.status}]"

    @property
    def api_key_masked(self) -> str:
        return mask(self.api_key)


class UnitalkEvent(models.Model):
    """One received webhook: stored raw before anything else happens, processed by a job.

    "received" rows are the inbox of `integration.jobs`: the dispatcher gives each its job
    and marks it "queued" (see `intake`).
    """

    class State(models.TextChoices):
        RECEIVED = "received", "received"
        QUEUED = "queued", "queued"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed"

    # Every index and constraint check is paid on the webhook hot path. No separate index: the
    # unique (portal, event, call_id) below serves portal lookups. No database FK constraint:
    # each check takes a share lock on the one portal row every webhook points at; the event's
    # job carries the constraint, and Django's CASCADE still deletes events.
    portal = models.ForeignKey(
        "bitrixapp.Portal",
        on_delete=models.CASCADE,
        related_name="unitalk_events",
        db_index=False,
        db_constraint=False,
    )
    event = models.CharField(max_length=32)
    call_id = models.CharField(max_length=64)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)
    # Deliveries after the first (Unitalk may send the same event again).
    duplicates = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=djtz.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "event", "call_id"], name="unitalk_event_once"
            )
        ]
        # Small (only events still waiting for their job), so the dispatcher's scan stays cheap
        # however large the table grows.
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(state="received"), name="unitalk_event_inbox"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.call_id} [{self.state}]"


class OperatorMapping(models.Model):
    """Bitrix24 user <-> Unitalk inner line, one to one within a portal."""

    class Source(models.TextChoices):
        AUTO = "auto", "matched by UF_PHONE_INNER"
        MANUAL = "manual", "set by an admin"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="operator_mappings"
    )
    bitrix_user_id = models.PositiveIntegerField()
    line = models.CharField(max_length=32)
    name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.AUTO)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "bitrix_user_id"], name="operator_user_once"),
            models.UniqueConstraint(fields=["portal", "line"], name="operator_line_once"),
        ]

    def __str__(self) -> str:
        return f"user {self.bitrix_user_id} <-> line {self.line} ({self.source})"
