"""Agent presence: one state per (portal, Bitrix24 user with a Unitalk line), its history, and
the portal's sync switches (docs/agents.md §5, §5.1)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class State(models.TextChoices):
    AVAILABLE = "available", "available"
    BUSY = "busy", "busy"
    WRAP_UP = "wrap_up", "wrap-up"
    PAUSED = "paused", "paused"
    NO_LINE = "no_line", "no line"
    INACTIVE = "inactive", "inactive"


class Reason(models.TextChoices):
    # PAUSED reasons exactly as docs/agents.md §5 lists them; "" for the other states.
    NONE = "", "none"
    BREAK = "break", "on a break"
    DAY_PAUSED = "day_paused", "work day paused"
    DAY_CLOSED = "day_closed", "work day not open"
    DAY_EXPIRED = "day_expired", "yesterday's work day not closed"
    OFFLINE = "offline", "offline"
    MANUAL = "manual", "set offline"
    SYNC_FAILED = "sync_failed", "status sync failed"
    LINE_FAILING = "line_failing", "line failing"


class Toggle(models.TextChoices):
    """What the agent chose in the app."""

    AVAILABLE = "available", "available"
    BREAK = "break", "break"
    OFFLINE = "offline", "offline"


class AgentState(models.Model):
    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="agent_states"
    )
    bitrix_user_id = models.PositiveIntegerField()
    name = models.CharField(max_length=255, blank=True)
    line = models.CharField(max_length=32, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.PAUSED)
    reason = models.CharField(max_length=16, choices=Reason.choices, blank=True)
    since = models.DateTimeField(default=timezone.now)
    wrap_up_until = models.DateTimeField(null=True, blank=True)

    # Inputs as last read (docs/agents.md §5): kept so a recomputation needs no request.
    timeman_status = models.CharField(max_length=16, blank=True)  # OPENED/PAUSED/CLOSED/...
    timeman_since = models.DateTimeField(null=True, blank=True)
    #: None until timeman.settings answered; False = time tracking off (or module missing).
    time_tracking = models.BooleanField(null=True, blank=True)
    user_active = models.BooleanField(null=True, blank=True)  # None: user.get has not said
    user_online = models.BooleanField(null=True, blank=True)
    user_missing = models.BooleanField(default=False)  # deleted in Bitrix24 / left
    toggle = models.CharField(max_length=16, choices=Toggle.choices, default=Toggle.AVAILABLE)
    toggle_note = models.CharField(max_length=255, blank=True)
    manager_user_id = models.PositiveIntegerField(null=True, blank=True)
    #: user.get UF_DEPARTMENT ids (fallback routing's "same department", docs/routing.md).
    departments = models.JSONField(default=list, blank=True)

    # Sync health.
    push_failed = models.BooleanField(default=False)  # Unitalk push failed for good
    push_error = models.TextField(blank=True)
    pushed_state = models.CharField(max_length=16, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)  # last successful timeman reading
    settings_checked_at = models.DateTimeField(null=True, blank=True)
    users_checked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portal", "bitrix_user_id"], name="agent_user_once")
        ]
        indexes = [models.Index(fields=["portal", "line"], name="agent_portal_line")]
        ordering = ["portal_id", "bitrix_user_id"]

    def __str__(self) -> str:
        return f"agent {self.bitrix_user_id} [{self.state} {self.reason}]"


class AgentTransition(models.Model):
    """One change of effective state, so a page can say why and since when."""

    agent = models.ForeignKey(AgentState, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=16, blank=True)
    from_reason = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    to_reason = models.CharField(max_length=16, blank=True)
    #: Which input caused it: poll, settings, users, toggle, call, push, stale, mapping, search.
    source = models.CharField(max_length=16)
    detail = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["agent", "-at"], name="agent_transition_recent")]


class AgentSync(models.Model):
    """A portal's agent-status switches and poll health."""

    class Capability(models.TextChoices):
        UNKNOWN = "unknown", "not probed"
        PRESENT = "present", "present"
        ABSENT = "absent", "absent"

    portal = models.OneToOneField(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="agent_sync"
    )
    #: Push the effective state to Unitalk (its API is UNCONFIRMED: off by default).
    push_enabled = models.BooleanField(default=False)
    push_capability = models.CharField(
        max_length=8, choices=Capability.choices, default=Capability.UNKNOWN
    )
    push_probed_at = models.DateTimeField(null=True, blank=True)
    #: The Break toggle pauses / reopens the Bitrix24 work day (writes time sheets: opt-in).
    reverse_enabled = models.BooleanField(default=False)
    #: The timeman scope or module is missing: time tracking is treated as off for everybody.
    timeman_missing = models.BooleanField(default=False)
    poll_failures = models.PositiveIntegerField(default=0)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_poll_ok_at = models.DateTimeField(null=True, blank=True)
    last_poll_error = models.TextField(blank=True)
    users_polled_at = models.DateTimeField(null=True, blank=True)
    settings_polled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"agent sync {self.portal_id} push={self.push_enabled}"
