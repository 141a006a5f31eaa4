"""The autodialer's state: campaigns, their numbers and every dial attempt (docs/agents.md §5.2).

Campaign state lives in the app: Bitrix24 call lists have no REST method to set an item's status
(docs/agents.md §2.1), so a call-list source only feeds items and links calls back to the list.
"""

from __future__ import annotations

from datetime import time

from django.db import models

#: Retry delay per Unitalk outcome, seconds (docs/agents.md §5.2).
DEFAULT_RETRY_DELAYS = {"NOANSWER": 1800, "BUSY": 600, "FAIL": 3600, "CHANUNAVAIL": 3600}


def default_retry_delays() -> dict[str, int]:
    return dict(DEFAULT_RETRY_DELAYS)


class Campaign(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "draft"
        RUNNING = "running", "running"
        PAUSED = "paused", "paused"
        FINISHED = "finished", "finished"

    class Source(models.TextChoices):
        CRM_FILTER = "crm_filter", "CRM filter"
        CALL_LIST = "call_list", "Bitrix24 call list"
        MANUAL = "manual", "added one by one (robot, CSV)"
        #: The portal's system campaign of missed-call callbacks (docs/campaigns.md
        #: "Callbacks"): created on demand, never ticks itself, hidden from the pages.
        CALLBACKS = "callbacks", "callbacks"

    class LoadState(models.TextChoices):
        NONE = "", "not loaded"
        LOADING = "loading", "loading"
        LOADED = "loaded", "loaded"
        FAILED = "failed", "could not be loaded"

    portal = models.ForeignKey(
        "bitrixapp.Portal", on_delete=models.CASCADE, related_name="campaigns"
    )
    name = models.CharField(max_length=255)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    #: crm_filter: {"entity_type_id": 1, "filter": {...}, "stages": [...]}; call_list: {"list_id": 7}.
    source_params = models.JSONField(default=dict, blank=True)
    load_state = models.CharField(max_length=16, choices=LoadState.choices, blank=True)
    load_error = models.TextField(blank=True)

    #: The calling window, wall clock in the clients' timezone (IANA name).
    timezone = models.CharField(max_length=64, default="Europe/Kyiv")
    window_start = models.TimeField(default=time(9, 0))
    window_end = models.TimeField(default=time(20, 0))
    max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_delays = models.JSONField(default=default_retry_delays)
    #: Normalised numbers never to dial, whatever the source says.
    do_not_call = models.JSONField(default=list, blank=True)
    wrap_up_s = models.PositiveIntegerField(default=15)
    #: Pause the campaign when no agent was available this long (docs/agents.md §5.2, Issabel #49).
    auto_pause_after_s = models.PositiveIntegerField(default=600)
    no_agent_since = models.DateTimeField(null=True, blank=True)

    #: A to-do for the item's responsible user when a number ends not reached (crm.activity.todo.add).
    todo_on_failure = models.BooleanField(default=False)

    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    state_reason = models.CharField(max_length=255, blank=True)
    manager_user_id = models.PositiveIntegerField(null=True, blank=True)  # told about auto-pause
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["portal", "state"], name="campaign_portal_state")]
        constraints = [
            models.UniqueConstraint(
                fields=["portal"],
                condition=models.Q(source="callbacks"),
                name="campaign_callbacks_once",
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"campaign {self.name} [{self.state}]"


class CampaignAgent(models.Model):
    """An agent enrolled in a campaign, and why the dialer is not giving them numbers."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="agents")
    bitrix_user_id = models.PositiveIntegerField()
    paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=255, blank=True)
    #: Operator legs not answered in a row; two pause the agent (docs/agents.md §5.2).
    leg_failures = models.PositiveSmallIntegerField(default=0)
    #: The attempt this agent is on; set by a conditional update, so one dial per agent at a time.
    current_attempt = models.ForeignKey(
        "campaigns.Attempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    free_since = models.DateTimeField(null=True, blank=True)  # wrap-up counts from here
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "bitrix_user_id"], name="campaignagent_unique"
            )
        ]

    def __str__(self) -> str:
        return f"agent {self.bitrix_user_id} in campaign {self.campaign_id}"


class CampaignItem(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "waiting"
        CALLING = "calling", "being called"
        DONE = "done", "reached"
        FAILED = "failed", "not reached"
        SKIPPED = "skipped", "skipped"

    FINAL = (State.DONE, State.FAILED, State.SKIPPED)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    entity_type = models.CharField(
        max_length=16, blank=True
    )  # LEAD, DEAL, CONTACT, COMPANY, DYNAMIC_n
    entity_type_id = models.PositiveIntegerField(null=True, blank=True)
    entity_id = models.PositiveIntegerField(null=True, blank=True)
    #: The owner whose phones we dial (a deal's contact); equals the entity otherwise.
    phone_owner_type_id = models.PositiveIntegerField(null=True, blank=True)
    phone_owner_id = models.PositiveIntegerField(null=True, blank=True)
    raw_phone = models.CharField(max_length=64, blank=True)
    #: Digits only, with country code; "" when the number could not be normalised (then skipped).
    phone = models.CharField(max_length=20, blank=True)
    responsible_user_id = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)  # charged attempts (client outcomes)
    next_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=32, blank=True)
    call_list_id = models.PositiveIntegerField(null=True, blank=True)
    #: Higher first: a callback is offered before any campaign number (docs/campaigns.md).
    priority = models.PositiveSmallIntegerField(default=0)
    #: A callback item is offered only to this user (the missed call's owner).
    assignee_user_id = models.PositiveIntegerField(null=True, blank=True)
    #: The missed-call item this callback answers: one dialer item per FailedCall.
    failed_call = models.OneToOneField(
        "calls.FailedCall",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="dialer_item",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Campaign numbers merge by phone; callbacks are one per missed-call item instead
            # (the same client may call again after an earlier callback was settled).
            models.UniqueConstraint(
                fields=["campaign", "phone"],
                condition=~models.Q(phone="") & models.Q(failed_call__isnull=True),
                name="campaignitem_phone_unique",
            )
        ]
        indexes = [
            models.Index(fields=["campaign", "state", "next_at"], name="campaignitem_due"),
            models.Index(
                fields=["assignee_user_id", "state"],
                condition=models.Q(assignee_user_id__isnull=False),
                name="campaignitem_assignee",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.phone or self.raw_phone} [{self.state}]"


class Attempt(models.Model):
    class Outcome(models.TextChoices):
        NONE = "", "in progress"
        ANSWER = "ANSWER", "answered"
        NOANSWER = "NOANSWER", "no answer"
        BUSY = "BUSY", "busy"
        FAIL = "FAIL", "failed"
        CHANUNAVAIL = "CHANUNAVAIL", "unavailable"
        OPERATOR_NOANSWER = "OPERATOR_NOANSWER", "agent did not pick up"
        DIAL_FAILED = "DIAL_FAILED", "could not be dialled"
        SKIPPED = "SKIPPED", "not dialled"

    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveSmallIntegerField()  # 1-based, charged attempts so far + 1
    agent_user_id = models.PositiveIntegerField()
    #: The agent row that took it: for a callback item, an agent of another campaign (the one
    #: whose tick dialled it), whose wrap-up, pause and wake-up the outcome settles.
    agent = models.ForeignKey(
        CampaignAgent, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    call_sync = models.OneToOneField(
        "calls.CallSync",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="campaign_attempt",
    )
    outcome = models.CharField(max_length=32, choices=Outcome.choices, blank=True)
    charged = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["item", "started_at"], name="attempt_item_started")]

    def __str__(self) -> str:
        return f"attempt {self.number} of item {self.item_id} [{self.outcome or 'live'}]"

    def meta(self) -> str:
        """The directCall `meta` naming campaign, item and attempt (docs/agents.md §5.2)."""
        return f"cmp:{self.item.campaign_id}:{self.item_id}:{self.pk}"
