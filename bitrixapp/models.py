"""The Bitrix24 portal that installed the app: who it is, how to reach it, its secrets."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from bitrixapp.crypto import EncryptedTextField


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

    # The portal's REST budget (leaky bucket); paid plans get more (reference §4.1).
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
