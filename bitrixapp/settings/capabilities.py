"""The capabilities' tunables: durable jobs, readiness, metrics, Unitalk, agents, Bitrix24,
pages and notifications, the call pipeline, campaigns, routing. Each section adds its app and beat entries
to the lists bitrixapp/settings/base.py starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from bitrixapp.settings.base import CELERY_BEAT_SCHEDULE, CELERY_INTERACTIVE_QUEUE, INSTALLED_APPS
from bitrixapp.settings.environment import env, writable_dir

# --- Durable jobs ----------------------------------------------------------------------------
JOB_BACKOFF_BASE_S = env.float("JOB_BACKOFF_BASE_S", default=2.0)
JOB_BACKOFF_CAP_S = env.float("JOB_BACKOFF_CAP_S", default=600.0)
JOB_RETRY_HORIZON_S = env.int("JOB_RETRY_HORIZON_S", default=6 * 3600)
# How long a running attempt may go silent before another worker may take the job over. The
# worker renews it every JOB_LEASE_RENEW_S while the attempt runs (integration/lease.py), so a
# killed worker's job is taken over within JOB_LEASE_S + JOB_DISPATCH_INTERVAL_S; a job whose
# attempts died with their worker JOB_MAX_ABANDONED times is given up (dead).
JOB_LEASE_S = env.float("JOB_LEASE_S", default=10.0)
JOB_LEASE_RENEW_S = env.float("JOB_LEASE_RENEW_S", default=2.0)
JOB_MAX_ABANDONED = env.int("JOB_MAX_ABANDONED", default=3)
# Retries due within this many seconds go to the broker with a countdown; later ones wait in the
# job row for beat's dispatcher, so the broker never holds a message longer than this plus a run
# (docs/operations.md, "RabbitMQ").
JOB_SHORT_RETRY_S = env.float("JOB_SHORT_RETRY_S", default=10.0)
JOB_DISPATCH_INTERVAL_S = env.float("JOB_DISPATCH_INTERVAL_S", default=5.0)
CELERY_BEAT_SCHEDULE["jobs-dispatch"] = {
    "task": "integration.jobs_dispatch",
    "schedule": JOB_DISPATCH_INTERVAL_S,
    # The dispatcher recovers lost hand-offs of interactive jobs too: it must not wait behind
    # a backlog itself.
    "options": {"queue": CELERY_INTERACTIVE_QUEUE},
}
# Budget slots kept for the interactive lane (background stops while this many are free): a
# live call's register and finish come within a second of each other (docs/pipeline.md,
# "Budgets").
RATE_INTERACTIVE_RESERVE_SLOTS = env.int("RATE_INTERACTIVE_RESERVE_SLOTS", default=3)
# A worker waits for budget in place only this long; a longer wait reschedules the job.
RATE_MAX_SLEEP_S = env.float("RATE_MAX_SLEEP_S", default=0.05)

# --- Heartbeats and readiness (docs/operations.md, "Readiness") -------------------------------
# Workers and beat write a heartbeat this often (bitrixapp/heartbeats.py); /readyz fails a part
# whose heartbeat is older than READY_HEARTBEAT_MAX_AGE_S.
HEARTBEAT_INTERVAL_S = env.float("HEARTBEAT_INTERVAL_S", default=5.0)
READY_HEARTBEAT_MAX_AGE_S = env.float("READY_HEARTBEAT_MAX_AGE_S", default=30.0)
CELERY_BEAT_SCHEDULER = "bitrixapp.heartbeats:HeartbeatScheduler"
# /readyz fails when the oldest due job of a queue has waited longer than this (seconds); per
# queue: READY_BACKLOG_MAX_AGE_BY_QUEUE=interactive=30,background=900.
READY_BACKLOG_MAX_AGE_S = env.float("READY_BACKLOG_MAX_AGE_S", default=120.0)
READY_BACKLOG_MAX_AGE_BY_QUEUE: dict[str, float] = env.dict(
    "READY_BACKLOG_MAX_AGE_BY_QUEUE", cast={"value": float}, default={}
)

# --- Metrics (/metrics; docs/operations.md, "Metrics") ------------------------------------------
# Off unless one of these is set: a bearer token scrapers send, and/or client networks that may
# scrape without it (comma-separated addresses or CIDRs, e.g. 10.0.0.0/8,127.0.0.1).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOW_IPS = env.list("METRICS_ALLOW_IPS", default=[])
# A folder every web and worker process of the host writes its counters into (prometheus-client
# multiprocess mode), under APP_VAR_DIR; empty: each process counts alone and /metrics shows the
# web process's own. Emptied by the release step (counts restart with the processes).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    writable_dir(Path(PROMETHEUS_MULTIPROC_DIR))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR

# --- Unitalk side (issue #5: client, webhook intake, operators, reconciliation) ------------------
INSTALLED_APPS += ["integration.unitalk", "integration.calls"]
# Request budget per Unitalk API key, shared by every process. Unitalk does not publish its quota
# (docs/unitalk.md §2.5: requests are weighted by server time, bursts trip "DOS protection"),
# so stay well under anything plausible: a short burst, then a steady 2 requests/s.
UNITALK_RATE_BURST = env.int("UNITALK_RATE_BURST", default=10)
UNITALK_RATE_PER_SECOND = env.float("UNITALK_RATE_PER_SECOND", default=2.0)
# A worker waits at most this long for a slot; beyond it the job is rescheduled instead.
UNITALK_RATE_MAX_WAIT_S = env.float("UNITALK_RATE_MAX_WAIT_S", default=20.0)
# Of the key's burst, the slots recording downloads leave to clicks: five people clicking at
# once are dialled without waiting (bench/latency.py: with 3, the 4th and 5th click of a round
# waited 0.5 s and 1 s behind recordings; docs/pipeline.md, "Budgets").
UNITALK_RATE_INTERACTIVE_RESERVE_SLOTS = env.int(
    "UNITALK_RATE_INTERACTIVE_RESERVE_SLOTS", default=5
)
# How long the key is parked after Unitalk answers with its overload / DOS-protection error.
UNITALK_OVERLOAD_BACKOFF_S = env.float("UNITALK_OVERLOAD_BACKOFF_S", default=60.0)
# history/get silently stops at 1000 calls per query (docs/unitalk.md §3.1); windows above it
# are split.
UNITALK_HISTORY_PAGE_SIZE = env.int("UNITALK_HISTORY_PAGE_SIZE", default=1000)
UNITALK_HISTORY_CAP = env.int("UNITALK_HISTORY_CAP", default=1000)
UNITALK_RECORDING_MAX_BYTES = env.int("UNITALK_RECORDING_MAX_BYTES", default=100 * 1024 * 1024)
UNITALK_DEFAULT_TIMEZONE = env.str("UNITALK_DEFAULT_TIMEZONE", default="Europe/Kyiv")
# Webhook intake: body cap (413 above it), optional secret header, how often "last webhook
# received" is written (at most once per interval, to keep the door to one INSERT).
UNITALK_WEBHOOK_MAX_BYTES = env.int("UNITALK_WEBHOOK_MAX_BYTES", default=64 * 1024)
UNITALK_WEBHOOK_SECRET_HEADER = env.str("UNITALK_WEBHOOK_SECRET_HEADER", default="X-Unitalk-Secret")
UNITALK_WEBHOOK_SEEN_EVERY_S = env.float("UNITALK_WEBHOOK_SEEN_EVERY_S", default=60.0)
# Wrong-secret answers per client IP, shared by every web process (integration.core.ratelimit): a
# burst, then a steady rate; past it 429. Deliveries with the right secret are never counted.
UNITALK_WEBHOOK_REFUSALS_BURST = env.int("UNITALK_WEBHOOK_REFUSALS_BURST", default=20)
UNITALK_WEBHOOK_REFUSALS_PER_S = env.float("UNITALK_WEBHOOK_REFUSALS_PER_S", default=1.0)
# Header a trusted proxy sets with the client address (its last hop is used); empty: the
# socket's address (REMOTE_ADDR). Never set it without such a proxy: clients could choose it.
UNITALK_WEBHOOK_CLIENT_IP_HEADER = env.str("UNITALK_WEBHOOK_CLIENT_IP_HEADER", default="")
# Per-process cache of webhook secret -> connection (a rotated secret dies within this time).
UNITALK_WEBHOOK_TARGET_CACHE_S = env.float("UNITALK_WEBHOOK_TARGET_CACHE_S", default=30.0)
# Webhook jobs are handed to workers by one jobs_dispatch per window per web process.
UNITALK_WEBHOOK_KICK_WINDOW_S = env.float("UNITALK_WEBHOOK_KICK_WINDOW_S", default=0.02)
# More webhook events of one portal than this in one inbox feed are a backlog (a replay after an
# outage), not live calls: their jobs go to the background lane (integration/unitalk/intake.py).
UNITALK_WEBHOOK_BURST = env.int("UNITALK_WEBHOOK_BURST", default=50)
# Reconciliation against history/get: the window looked at on each run, the overlap kept with
# the previous run, and how far back a run may reach after downtime.
UNITALK_RECONCILE_WINDOW_S = env.int("UNITALK_RECONCILE_WINDOW_S", default=2 * 3600)
UNITALK_RECONCILE_OVERLAP_S = env.int("UNITALK_RECONCILE_OVERLAP_S", default=15 * 60)
UNITALK_RECONCILE_MAX_BACKFILL_S = env.int("UNITALK_RECONCILE_MAX_BACKFILL_S", default=24 * 3600)
UNITALK_RECONCILE_EVERY_S = env.float("UNITALK_RECONCILE_EVERY_S", default=10 * 60)
UNITALK_OPERATORS_SYNC_EVERY_S = env.float("UNITALK_OPERATORS_SYNC_EVERY_S", default=3600)
CELERY_BEAT_SCHEDULE["unitalk-reconcile"] = {
    "task": "unitalk.reconcile_all",
    "schedule": UNITALK_RECONCILE_EVERY_S,
}
CELERY_BEAT_SCHEDULE["unitalk-operators-sync"] = {
    "task": "unitalk.operators_sync_all",
    "schedule": UNITALK_OPERATORS_SYNC_EVERY_S,
}

# --- Agent status (issue 13, docs/agents.md §5.1) ----------------------------------------------
INSTALLED_APPS += ["integration.agents"]
# Bitrix24 sends no time-tracking event (docs/agents.md §1.1): timeman.status is polled per
# portal, in batches of 50 users (one request slot each), this often in working hours
# (AGENT_WORK_*_HOUR, the portal's Unitalk time zone) and this often outside them.
AGENT_POLL_WORK_S = env.float("AGENT_POLL_WORK_S", default=60.0)
AGENT_POLL_OFF_S = env.float("AGENT_POLL_OFF_S", default=300.0)
AGENT_WORK_START_HOUR = env.int("AGENT_WORK_START_HOUR", default=8)
AGENT_WORK_END_HOUR = env.int("AGENT_WORK_END_HOUR", default=20)
# user.get (ACTIVE, IS_ONLINE, departments) and timeman.settings (UF_TIMEMAN) refresh intervals.
AGENT_USERS_EVERY_S = env.float("AGENT_USERS_EVERY_S", default=300.0)
AGENT_SETTINGS_EVERY_S = env.float("AGENT_SETTINGS_EVERY_S", default=86400.0)
# Polls failed in a row before the agents count as stale (PAUSED(sync_failed) for the dialer).
AGENT_STALE_PERIODS = env.int("AGENT_STALE_PERIODS", default=3)
# A call without CALL_END older than this no longer holds its agent busy (reconciliation
# completes it from history/get), the wrap-up after an answered call, and how many operator-leg
# failures in a row mark a line failing.
AGENT_BUSY_MAX_S = env.int("AGENT_BUSY_MAX_S", default=4 * 3600)
AGENT_WRAP_UP_S = env.int("AGENT_WRAP_UP_S", default=15)
AGENT_LINE_FAIL_COUNT = env.int("AGENT_LINE_FAIL_COUNT", default=3)
# Failed legs older than this no longer count: a line-failing pause lapses and the line is tried.
AGENT_LINE_FAIL_WINDOW_S = env.float("AGENT_LINE_FAIL_WINDOW_S", default=600.0)
# Off: beat starts no agent polls (the last states stay; a kill switch for operations).
AGENT_POLL_ENABLED = env.bool("AGENT_POLL_ENABLED", default=True)
# How often beat looks for portals whose poll is due (a poll job is keyed per period).
AGENT_POLL_TICK_S = env.float("AGENT_POLL_TICK_S", default=15.0)
CELERY_BEAT_SCHEDULE["agents-poll"] = {"task": "agents.poll_all", "schedule": AGENT_POLL_TICK_S}

# --- Bitrix24 side (issue #4: install, events, REST client, token refresh) ---------------------
# BX24.js for app pages; the sandbox serves its own at http://127.0.0.1:8001/bx24.js.
BITRIX24_JS_URL = env.str("BITRIX24_JS_URL", default="//api.bitrix24.com/api/v1/")
BITRIX24_APP_TITLE = env.str("BITRIX24_APP_TITLE", default="Unitalk")
# The external line the app registers (telephony.externalLine.add) on install.
BITRIX24_LINE_NUMBER = env.str("BITRIX24_LINE_NUMBER", default="unitalk")
BITRIX24_LINE_NAME = env.str("BITRIX24_LINE_NAME", default="Unitalk")
# Refresh this long before the stored expiry (reactive refresh on expired_token stays the rule;
# docs/bitrix24.md §1.6: never refresh all portals on a timer).
BITRIX24_REFRESH_MARGIN_S = env.int("BITRIX24_REFRESH_MARGIN_S", default=60)
# Our share of the portal's leaky bucket: a slot below the plan for network jitter (background
# also leaves the interactive reserve), and a drain 1 % below it so our count never runs behind
# Bitrix24's; a 503 QUERY_LIMIT_EXCEEDED sets ours to full (docs/pipeline.md, "Budgets").
BITRIX24_RATE_SAFETY_SLOTS = env.int("BITRIX24_RATE_SAFETY_SLOTS", default=1)
BITRIX24_RATE_SAFETY_FACTOR = env.float("BITRIX24_RATE_SAFETY_FACTOR", default=0.99)
BITRIX24_RATE_MAX_WAIT_S = env.float("BITRIX24_RATE_MAX_WAIT_S", default=20.0)
# Operating-time budget per method (cloud: 480 s per 10 min, docs/bitrix24.md §4.2); park a
# method at this share of it, and for this long after a 429 when operating_reset_at is unknown.
BITRIX24_OPERATING_LIMIT_S = env.float("BITRIX24_OPERATING_LIMIT_S", default=480.0)
BITRIX24_OPERATING_PARK_RATIO = env.float("BITRIX24_OPERATING_PARK_RATIO", default=0.95)
BITRIX24_OPERATING_DEFAULT_PARK_S = env.float("BITRIX24_OPERATING_DEFAULT_PARK_S", default=60.0)
# Signed page tokens (X-App-Token) for requests from app pages, and the AUTH_ID check cache.
BITRIX24_PAGE_TOKEN_MAX_AGE_S = env.int("BITRIX24_PAGE_TOKEN_MAX_AGE_S", default=3600)
BITRIX24_AUTH_CHECK_CACHE_S = env.int("BITRIX24_AUTH_CHECK_CACHE_S", default=60)

# --- Pages, notifications and e-mail (issue #7) ------------------------------------------------
# Workers must know the notification.deliver job kind and the digest task at start-up; the web
# process imports the same module through the page actions.
CELERY_IMPORTS = ["integration.notifications.delivery"]
# Failed-call lists: rows per page.
PAGES_FAILED_CALLS_PER_PAGE = env.int("PAGES_FAILED_CALLS_PER_PAGE", default=25)
# How often the call-card tab asks for the live sync state (milliseconds).
PAGES_CALL_CARD_POLL_MS = env.int("PAGES_CALL_CARD_POLL_MS", default=3000)
# Live calls on the overview (docs/pages.md "Live calls"): poll period (ms), how far back a call
# without CALL_END still counts as in progress (s); call history page size.
PAGES_LIVE_POLL_MS = env.int("PAGES_LIVE_POLL_MS", default=1000)
PAGES_LIVE_WINDOW_S = env.int("PAGES_LIVE_WINDOW_S", default=4 * 3600)
PAGES_HISTORY_PER_PAGE = env.int("PAGES_HISTORY_PER_PAGE", default=50)
# Daily digest to stakeholder e-mail addresses (UTC hour; beat checks hourly, one per day by key).
NOTIFY_DIGEST_HOUR_UTC = env.int("NOTIFY_DIGEST_HOUR_UTC", default=6)
CELERY_BEAT_SCHEDULE["notifications-digest"] = {
    "task": "integration.notifications_digest",
    "schedule": 3600.0,
}

# --- Call pipeline (issue #6) ------------------------------------------------------------------
# A person waits on the phone during a click-to-call: give up dialing (and tell them) after this
# long instead of the general job horizon of hours.
CALL_DIAL_HORIZON_S = env.int("CALL_DIAL_HORIZON_S", default=600)
# A person's click (click-to-call, callback) is now or never (issue 21 item 1): transient
# failures are retried quickly for this long after the click, then the call fails visibly and
# is never dialled later on its own.
CALL_CLICK_DEADLINE_S = env.float("CALL_CLICK_DEADLINE_S", default=15.0)
# First retry delay of a click within its deadline; doubles per attempt, at most 4 s.
CALL_CLICK_RETRY_BASE_S = env.float("CALL_CLICK_RETRY_BASE_S", default=0.5)
# Calls taken per drain batch: register + finish = 2 commands each, 50 commands per batch
# (docs/bitrix24.md §2.5).
CALL_DRAIN_BATCH = env.int("CALL_DRAIN_BATCH", default=25)
# A drain claim older than this is abandoned (worker died mid-batch) and may be taken again.
CALL_DRAIN_CLAIM_S = env.int("CALL_DRAIN_CLAIM_S", default=120)
# Background drains of one portal on their way at once; further ended calls wait as held rows
# that the chain reaches (integration/calls/chain.py): one message per batch, not per call.
CALL_DRAIN_PARALLEL = env.int("CALL_DRAIN_PARALLEL", default=4)
# jobs.py reads this with getattr (default 60 s): made settable so the chaos test can recover
# hand-offs lost with a SIGKILLed worker within its time budget.
JOB_REDISPATCH_AFTER_S = env.int("JOB_REDISPATCH_AFTER_S", default=60)

# --- Autodialer campaigns (issue 14, docs/agents.md §5.2) ---------------------------------------
INSTALLED_APPS += ["integration.campaigns"]
# A running campaign's tick period (the doc's 2-5 s); CALL_END wakes it earlier.
CAMPAIGN_TICK_S = env.float("CAMPAIGN_TICK_S", default=3.0)
# Succeeded tick jobs kept per campaign (the page and an operator can see the last rounds); the
# next tick deletes older ones, so a running campaign does not leave ~29,000 rows a day.
CAMPAIGN_TICK_KEEP = env.int("CAMPAIGN_TICK_KEEP", default=20)
# An item "calling" this long without a Unitalk call is checked against history/get by meta.
CAMPAIGN_CALLING_STALE_S = env.float("CAMPAIGN_CALLING_STALE_S", default=600.0)
# A number claimed by a tick that died before it made the attempt (a killed worker) is put back
# in the queue after this long; ticks take well under a second, a slow re-check seconds.
CAMPAIGN_CLAIM_STALE_S = env.float("CAMPAIGN_CLAIM_STALE_S", default=60.0)
# Items loaded at most per campaign (a huge source is paged, never one request).
CAMPAIGN_MAX_ITEMS = env.int("CAMPAIGN_MAX_ITEMS", default=20000)

# --- Fallback routing (issue 15, integration/routing, docs/routing.md) -----------------------------
INSTALLED_APPS += ["integration.routing"]
# A line presence marks failing is not dialled for this long after it was marked; a click
# after it is a probe (the line may work again), rerouted if it fails again.
ROUTING_LINE_FAILING_HOLD_S = env.float("ROUTING_LINE_FAILING_HOLD_S", default=600.0)
# How often beat looks for callback items left open past the portal's escalation minutes.
ROUTING_ESCALATE_TICK_S = env.float("ROUTING_ESCALATE_TICK_S", default=60.0)
CELERY_BEAT_SCHEDULE["routing-escalate"] = {
    "task": "routing.escalate_due",
    "schedule": ROUTING_ESCALATE_TICK_S,
}
