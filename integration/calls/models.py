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
            # Presence reads each agent's line: live call, last ended call (wrap-up), the last
            # outbound legs (line failing): docs/agents.md §5.1. Without it, every agent of a
            # poll scanned all the portal's calls.
            models.Index(
                fields=["portal", "operator_line", "ended_at"], name="call_portal_line_ended"
            ),
        ]

    def __str__(self) -> str:
        return f"call {self.unitalk_call_id} [{self.status}]"


class CallSync(models.Model):
    """One call as Bitrix24 knows it, and how far we got telling Bitrix24 about it.

    The association Unitalk call ↔ Bitrix24 `CALL_ID` ↔ CRM entity lives here, unique per portal
    on both ids. A click-to-call starts as a row with only the Bitrix24 `CALL_ID` (the portal
    registered it) and gains its Unitalk call when the webhooks echo our `meta`; a call that
    starts at Unitalk gains its Bitrix24 `CALL_ID` when we register it.
    """

    class Origin(models.TextChoices):
        CLICK_TO_CALL = "click_to_call", "click-to-call from Bitrix24"
        CALLBACK = "callback", "callback request from Bitrix24"
        UNITALK = "unitalk", "call seen at Unitalk"
        CAMPAIGN = "campaign", "autodialer campaign"

    class Stage(models.TextChoices):
        # Where the Bitrix24 side of the call stands; only ever moves forward.
        NEW = "new", "not yet in Bitrix24"
        DIALING = "dialing", "dialing through Unitalk"
        REGISTERED = "registered", "registered in Bitrix24"
        FINISHED = "finished", "finished in Bitrix24"
        RECORDED = "recorded", "finished, recording attached"
        FAILED = "failed", "could not be placed or synced"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="call_syncs"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices)
    call = models.OneToOneField(
        Call, null=True, blank=True, on_delete=models.SET_NULL, related_name="sync"
    )
    # NULL, not "", until registered: the unique constraint must ignore unregistered rows.
    bitrix_call_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NEW)
    #: The directCall `meta` of a call the app starts without a Bitrix24 CALL_ID (a campaign dial:
    #: "cmp:<campaign>:<item>:<attempt>", docs/agents.md §5.2); the webhooks echo it back.
    dial_meta = models.CharField(max_length=128, blank=True)
    #: The Bitrix24 call list the call belongs to (CALL_LIST_ID of the event, or the campaign's
    #: call-list source), sent with register so the list links to the call (docs/agents.md §2.1).
    call_list_id = models.PositiveIntegerField(null=True, blank=True)

    user_id = models.PositiveIntegerField(null=True, blank=True)  # Bitrix24 user
    phone_number = models.CharField(max_length=64, blank=True)
    line_number = models.CharField(max_length=64, blank=True)
    crm_entity_type = models.CharField(max_length=16, blank=True)  # LEAD, CONTACT, COMPANY, DEAL
    crm_entity_id = models.PositiveIntegerField(null=True, blank=True)
    crm_activity_id = models.PositiveIntegerField(null=True, blank=True)

    status_code = models.CharField(max_length=8, blank=True)  # sent to finish: 200, 304, 486...
    failed_reason = models.TextField(blank=True)
    record_file_id = models.PositiveIntegerField(null=True, blank=True)
    record_url = models.URLField(max_length=1000, blank=True)  # Drive link when not attached
    last_error = models.TextField(blank=True)

    # Exactly-once machinery (docs/pipeline.md). A job owns the row while `claim_token` is set and
    # `claimed_until` is in the future; a dead worker's claim simply expires.
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The non-idempotent request we sent and whose outcome we do not know yet ("register",
    # "register_finish", "finish"); written (committed) before the request goes out, cleared on
    # a definite answer. A retry reads it to check Bitrix24 before repeating.
    sent_op = models.CharField(max_length=16, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # CALL_START_DATE exactly as sent: finds the finished call after an ambiguous batch.
    call_start_sent = models.CharField(max_length=40, blank=True)

    registered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(null=True, blank=True)
    details_stored_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "bitrix_call_id"], name="callsync_portal_bitrix_call_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["portal", "crm_entity_type", "crm_entity_id"], name="callsync_portal_crm"
            ),
            models.Index(fields=["portal", "stage"], name="callsync_portal_stage"),
            models.Index(fields=["portal", "dial_meta"], name="callsync_portal_dial_meta"),
        ]

    def __str__(self) -> str:
        return f"call sync {self.pk} {self.bitrix_call_id or '-'} [{self.stage}]"


class FailedCall(models.Model):
    """An item on the managers' failed-call lists: something a person should follow up."""

    class Kind(models.TextChoices):
        DIAL_FAILED = "dial_failed", "call could not be placed"
        MISSED = "missed", "missed call, callback needed"
        CRM_SYNC_FAILED = "crm_sync_failed", "CRM update failed"

    class State(models.TextChoices):
        OPEN = "open", "open"
        RETRYING = "retrying", "retrying"
        RESOLVED = "resolved", "resolved"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="failed_calls"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    # One open item per problem: e.g. "missed:<number>", "job:<id>".
    dedupe_key = models.CharField(max_length=255)
    call = models.ForeignKey(
        Call, null=True, blank=True, on_delete=models.SET_NULL, related_name="failed_items"
    )
    sync = models.ForeignKey(
        CallSync, null=True, blank=True, on_delete=models.SET_NULL, related_name="failed_items"
    )
    # The dead job a "retry" re-runs (dial, CRM update); empty for missed calls.
    job = models.ForeignKey(
        "integration.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="failed_items",
    )
    phone_number = models.CharField(max_length=64, blank=True)
    owner_user_id = models.PositiveIntegerField(null=True, blank=True)  # who should act
    crm_entity_type = models.CharField(max_length=16, blank=True)
    crm_entity_id = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    occurrences = models.PositiveIntegerField(default=1)  # e.g. the same number missed 3 times
    resolution = models.CharField(max_length=255, blank=True)
    resolved_by_user_id = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["portal", "dedupe_key"],
                condition=~models.Q(state="resolved"),
                name="failedcall_open_unique",
            )
        ]
        indexes = [
            models.Index(fields=["portal", "kind", "state", "created_at"], name="failedcall_list"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.phone_number} [{self.state}]"
