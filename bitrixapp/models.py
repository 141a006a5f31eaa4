"""The Bitrix24 portal that installed the app: who it is, how to reach it, its secrets."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from integration.core.crypto import EncryptedTextField


class Portal(models.Model):
    class Status(models.TextChoices):
        INSTALLING = "installing", "installing"
        ACTIVE = "active", "active"
        SUSPENDED = "suspended", "suspended"  # refresh refused, unpaid, blocked: admin must act
        UNINSTALLED = "uninstalled", "uninstalled"

    member_id = models.CharField(max_length=64, unique=True)
    domain = models.CharField(max_length=255)
    client_endpoint = models.URLField(max_length=255)
    server_endpoint = models.URLField(max_length=255, blank=True)
    scope = models.TextField(blank=True)
    lang = models.CharField(max_length=8, default="en")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INSTALLING)
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)

    application_token = EncryptedTextField(blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    installed_by_user_id = models.PositiveIntegerField(null=True, blank=True)

    # The portal's REST budget (leaky bucket); paid plans get more (docs/bitrix24.md §4.1).
    rate_burst = models.PositiveIntegerField(default=50)
    rate_drain = models.FloatField(default=2.0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return f"{self.domain} ({self.member_id})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class BitrixEvent(models.Model):
    """One event Bitrix24 posted to /bitrix/events/, stored once before it is acted on.

    Bitrix24 does not resend events (docs/bitrix24.md §1.3), so the door stores the payload
    (without its tokens) and answers at once; a job does the work. `dedupe_key` is the natural
    key (event + CALL_ID, or a hash of the body) so a duplicate POST becomes the same row.
    """

    class State(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed"

    portal = models.ForeignKey(
        Portal, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    event = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=255, unique=True)
    data = models.JSONField(default=dict, blank=True)
    user_id = models.PositiveIntegerField(null=True, blank=True)
    ts = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["portal", "event", "state"], name="bxevent_portal_state")]
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event} [{self.state}]"


class PortalOptions(models.Model):
    """What a portal's admin chose on the settings page; the call pipeline reads it."""

    class CardMode(models.TextChoices):
        ON_RING = "ring", "show the call card when the phone rings"
        ON_ANSWER = "answer", "show the call card when the call is answered"
        NEVER = "never", "never show the call card"

    class MissedOwnerRule(models.TextChoices):
        # Who is told about a missed inbound call, tried in order until one is known.
        CRM_RESPONSIBLE = "crm", "CRM entity's responsible, then last user who rang, then default"
        LAST_USER = "last_user", "last user who rang, then default"
        DEFAULT_USER = "default", "always the default user"

    portal = models.OneToOneField(Portal, on_delete=models.CASCADE, related_name="options")
    create_leads = models.BooleanField(default=True, help_text="create a lead for unknown numbers")
    card_mode = models.CharField(max_length=8, choices=CardMode.choices, default=CardMode.ON_RING)
    recordings_to_drive = models.BooleanField(default=True)
    missed_owner_rule = models.CharField(
        max_length=16, choices=MissedOwnerRule.choices, default=MissedOwnerRule.CRM_RESPONSIBLE
    )
    default_user_id = models.PositiveIntegerField(null=True, blank=True)
    # Bitrix24 user ids told about portal-wide problems; empty means the portal's admins.
    notify_user_ids = models.JSONField(default=list, blank=True)
    stakeholder_emails = models.TextField(blank=True, help_text="comma-separated addresses")
    daily_digest = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by_user_id = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"options of {self.portal_id}"

    @property
    def stakeholder_email_list(self) -> list[str]:
        return [
            a.strip() for a in self.stakeholder_emails.replace(";", ",").split(",") if a.strip()
        ]


def portal_options(portal: Portal) -> PortalOptions:
    """The portal's options, created with defaults on first use."""
    options, _ = PortalOptions.objects.get_or_create(portal=portal)
    return options
