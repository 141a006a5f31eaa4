"""The call as we know it from Unitalk.

One row per Unitalk call (`unitalk_call_id`, the id that links CALL_NEW..CALL_END), merged from
webhooks in whatever order they arrive and from `history/get` reconciliation. The call pipeline
(Bitrix24 sync, recordings) reads these rows; it never reads raw webhook payloads.
"""

from __future__ import annotations

from django.db import models


class Call(models.Model):
    class Direction(models.TextChoices):
        IN = "in", "inbound"
        OUT = "out", "outbound"
        MISSED = "missed", "missed inbound"
        INNER = "inner", "between inner lines"

    class Status(models.TextChoices):
        # Our own progress of the call; only ever moves forward (see RANK).
        RINGING = "ringing", "ringing"
        ANSWERED = "answered", "answered"
        ENDED = "ended", "ended"

    RANK = {Status.RINGING: 0, Status.ANSWERED: 1, Status.ENDED: 2}

    portal = models.ForeignKey("bitrixapp.Portal", on_delete=models.CASCADE, related_name="calls")
    unitalk_call_id = models.CharField(max_length=64)
    # Unitalk's persistent database id, present once the call is saved (history, CALL_END).
    unitalk_dbid = models.BigIntegerField(null=True, blank=True)

    direction = models.CharField(max_length=8, choices=Direction.choices, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RINGING)
    #: Unitalk's final `state` (ANSWER, NOANSWER, BUSY...), empty until the call ended.
    state = models.CharField(max_length=32, blank=True)
    cause = models.IntegerField(null=True, blank=True)
    ended = models.BooleanField(default=False)

    #: The client's number (digits only): `from` inbound, `to[0]` outbound.
    client_number = models.CharField(max_length=32, blank=True)
    from_number = models.CharField(max_length=64, blank=True)
    to_numbers = models.JSONField(default=list, blank=True)
    #: The inner line (extension) of the operator who rang / answered / dialled.
    operator_line = models.CharField(max_length=32, blank=True)
    outer_number = models.CharField(max_length=64, blank=True)
    group_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=32, blank=True)
    #: Free string sent with directCall/originateNew and echoed back (click-to-call: Bitrix24 CALL_ID).
    meta = models.CharField(max_length=1000, blank=True)

    started_at = models.DateTimeField(null=True, blank=True)  # UTC
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(null=True, blank=True)
    full_seconds = models.PositiveIntegerField(null=True, blank=True)
    recording_url = models.URLField(max_length=1000, blank=True)

    last_event = models.CharField(max_length=32, blank=True)
    #: Created or completed from history/get rather than from webhooks (a webhook was lost).
    reconciled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "unitalk_call_id"], name="call_portal_unitalk_id_unique"
            )
        ]
        indexes = [
            models.Index(fields=["portal", "started_at"], name="call_portal_started"),
            models.Index(fields=["portal", "unitalk_dbid"], name="call_portal_dbid"),
        ]

    def __str__(self) -> str:
        return f"call {self.unitalk_call_id} [{self.status}]"
