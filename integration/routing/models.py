"""Fallback routing: the chain per portal, a user's override, and one row per rerouted call
(docs/routing.md)."""

from __future__ import annotations

from typing import Any

from django.db import models


class Step(models.TextChoices):
    OWN_LINE = "own_line", "own line"
    BACKUP_LINE = "backup_line", "the user's backup line"
    RESPONSIBLE = "responsible", "the CRM record's responsible"
    DEPARTMENT = "department", "a colleague of the same department"
    DUTY_LINE = "duty_line", "the duty line"
    CALLBACK = "callback", "a callback task"


#: The order Bitrix24's own router uses, adapted (docs/routing.md "The chain").
DEFAULT_STEPS = [step.value for step in Step]


def default_steps() -> list[dict[str, Any]]:
    return [{"step": step, "on": True} for step in DEFAULT_STEPS]


class RoutingPolicy(models.Model):
    """A portal's chain: ordered steps with on/off, the duty line, ask-first or dial."""

    class Mode(models.TextChoices):
        ASK_FIRST = "ask_first", "ask the next person first"
        DIAL = "dial", "dial from the next person's line"

    portal = models.OneToOneField(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="routing_policy"
    )
    enabled = models.BooleanField(default=True)
    #: [{"step": "<Step>", "on": bool}, ...] in order; "callback" always last and on.
    steps = models.JSONField(default=default_steps)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.ASK_FIRST)
    duty_line = models.CharField(max_length=32, blank=True)
    #: An unresolved rerouted callback escalates to the manager after this many minutes.
    escalate_after_min = models.PositiveIntegerField(default=30)
    #: A missed call's callback is offered first by the autodialer when its owner dials a
    #: running campaign (docs/routing.md "Callbacks in the dialer").
    callbacks_in_dialer = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"routing {self.portal_id} [{self.mode}]"


class RoutingOverride(models.Model):
    """One user's changes to the portal chain: a backup line and optionally their own steps."""

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="routing_overrides"
    )
    bitrix_user_id = models.PositiveIntegerField()
    backup_line = models.CharField(max_length=32, blank=True)
    #: None: the portal's steps; else the same shape as RoutingPolicy.steps.
    steps = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "bitrix_user_id"], name="routing_override_user_once"
            )
        ]
        ordering = ["portal_id", "bitrix_user_id"]


class Reroute(models.Model):
    """One call that could not be taken on its own line, and where it went (logged once): a
    click-to-call that could not reach the client, or an inbound call whose line's user was not
    available (its card went to the next person)."""

    class Trigger(models.TextChoices):
        NO_LINE = "no_line", "no Unitalk line"
        LINE_FAILING = "line_failing", "line failing"
        LINE_UNREACHABLE = "line_unreachable", "the line did not ring"
        REFUSED = "refused", "Unitalk refused the dial"
        UNITALK_DOWN = "unitalk_down", "Unitalk unavailable"
        INBOUND = "inbound", "the line's user was not available"

    class State(models.TextChoices):
        PENDING = "pending", "deciding"
        ASKED = "asked", "next person asked"
        DIALING = "dialing", "dialing from the next person's line"
        CALLBACK = "callback", "callback task created"
        CARD = "card", "card shown to the next person"
        FAILED = "failed", "could not be rerouted"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="reroutes"
    )
    #: The original call: one reroute per call, so it is logged exactly once.
    sync = models.OneToOneField("calls.CallSync", on_delete=models.CASCADE, related_name="reroute")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status_code = models.CharField(max_length=8, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    mode = models.CharField(max_length=16, blank=True)
    from_user_id = models.PositiveIntegerField(null=True, blank=True)
    phone_number = models.CharField(max_length=64, blank=True)
    crm_entity_type = models.CharField(max_length=16, blank=True)
    crm_entity_id = models.PositiveIntegerField(null=True, blank=True)
    #: [{"step", "outcome": "skipped"|"chosen", "reason", "user", "line", "name"}, ...]
    path = models.JSONField(default=list, blank=True)
    step = models.CharField(max_length=16, blank=True)
    to_user_id = models.PositiveIntegerField(null=True, blank=True)
    to_name = models.CharField(max_length=255, blank=True)
    to_line = models.CharField(max_length=32, blank=True)
    #: An inbound card's other viewers: the colleagues present when it rang (docs/routing.md).
    viewers = models.JSONField(default=list, blank=True)
    #: The new call registered for the next person (dial mode, or their one-click dial).
    dial_sync = models.OneToOneField(
        "calls.CallSync",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reroute_dial",
    )
    failed_item_id = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["portal", "-created_at"], name="reroute_recent")]

    def __str__(self) -> str:
        return f"reroute {self.pk} {self.trigger} → {self.step or '-'}"
