"""Settings for the Unitalk ↔ Bitrix24 app, read from the environment only.

The only file ever read is the one DJANGO_ENV_FILE names: `make run` points it at the `.env` that
`make` writes on first use (debug on, SQLite, a serverless Celery broker), the tests at
`tests/test.env`. Production sets real environment variables and no DJANGO_ENV_FILE, so a stray
`.env` left in the code folder is never read (docs/operations.md, "Configuration"). With debug
off, every secret must be present or start-up stops with a message naming the variable.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Real environment variables win over the file: read_env only fills what is unset.
_env_file = env.str("DJANGO_ENV_FILE", default="")
if _env_file:
    if not Path(_env_file).is_file():
        raise ImproperlyConfigured(f"DJANGO_ENV_FILE={_env_file} is not a readable file.")
    env.read_env(_env_file)
    SETTINGS_SOURCE = f"environment and {Path(_env_file).resolve()}"
else:
    SETTINGS_SOURCE = "environment only"


def writable_dir(path: Path) -> Path:
    """A folder the app writes into, made if it can be.

    On a read-only code tree nothing is made here; whatever writes into the folder later fails
    with its path, which names the variable to set (docs/operations.md, "Writable paths").
    """
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path


# Everything the app writes at run time lives under APP_VAR_DIR (sandbox state, file-based rate
# limits and cache, the embedded broker, beat's schedule, the embedded SQLite file); static files
# go to DJANGO_STATIC_ROOT. Unset, both stay in the code folder as before (var/, staticfiles/,
# db.sqlite3), which is what `make run` uses.
_var_dir_env = env.str("APP_VAR_DIR", default="")
VAR_DIR = Path(_var_dir_env).resolve() if _var_dir_env else BASE_DIR / "var"
writable_dir(VAR_DIR)

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def required(name: str, dev_default: str) -> str:
    """A secret: optional in debug mode, fatal when missing in production."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DJANGO_DEBUG is off; see .env.example."
    )


# --- Django core -----------------------------------------------------------------------------
SECRET_KEY = required("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-change-me")

# Public base URL of this app as Bitrix24 and Unitalk reach it (event handlers, webhook URLs).
APP_BASE_URL = env.str("APP_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
_app_host = urlsplit(APP_BASE_URL).hostname or "127.0.0.1"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
if _app_host not in ALLOWED_HOSTS:
    # The host Bitrix24 posts to must always be accepted, whatever else is configured.
    ALLOWED_HOSTS.append(_app_host)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "bitrixapp",
    "integration",
]
# The simulators (sandbox/, docs/sandbox.md) are a development and test tool: installed only where
# they are switched on, which is the default only with DEBUG on (make run, the test suite). A
# production deployment never ships them as an app, and asking for them there is a mistake.
# Empty counts as unset, so the line in .env.example changes nothing.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED") if env.str("SANDBOX_ENABLED", default="") else DEBUG
if SANDBOX_ENABLED and not DEBUG:
    raise ImproperlyConfigured(
        "SANDBOX_ENABLED is on with DJANGO_DEBUG off: the simulators are for development and tests "
        "only (docs/sandbox.md)."
    )
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "bitrixapp.middleware.RequestIdMiddleware",
    "bitrixapp.middleware.InputGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bitrixapp.urls"
WSGI_APPLICATION = "bitrixapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# Embedded default: SQLite. Production: postgres://user:pass@host:5432/name
_SQLITE_DEFAULT = (VAR_DIR if _var_dir_env else BASE_DIR) / "db.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{_SQLITE_DEFAULT}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Hot statements (the webhook door's insert) run as server-side prepared statements. Turn off
# behind a pooler that cannot carry them (PgBouncer in transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so worker processes started by tests see the test database;
    # WAL and a busy timeout let the web server, worker and beat write side by side.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # One file per test run (pid), so two runs side by side never delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Shared state between processes (rate limits, locks) -----------------------------------------
# Empty: single-machine fallbacks (SQLite/file based) are used. Production: redis://host:6379/0
REDIS_URL = env.str("REDIS_URL", default="")

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    )
}
# Rate-limit state when REDIS_URL is empty (integration/core/ratelimit.py: one file per key).
RATELIMIT_DIR = VAR_DIR / "ratelimit"

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("uk", "Українська"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static files (whitenoise) ---------------------------------------------------------------
STATIC_URL = "/static/"
# Filled by `collectstatic` (the release step); the web process only reads it.
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security --------------------------------------------------------------------------------
# App pages are embedded by Bitrix24; views that are framed set a CSP frame-ancestors for the
# portal's own domain, everything else is DENY.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# HSTS (`manage.py check --deploy` W004/W005): production is served over HTTPS only, since
# Bitrix24 opens app pages and posts events over HTTPS. Off by default in local development.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_BODY_BYTES", default=256 * 1024)

# Fernet keys (comma-separated, newest first) for tokens and API keys at rest. Rotation: put a
# new key first and keep the old ones after it until `manage.py rotate_encryption` has run.
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEY",
    default=[required("FIELD_ENCRYPTION_KEY", "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1zZWNyZXQhISE=")],
)

# --- Bitrix24 --------------------------------------------------------------------------------
BITRIX24_CLIENT_ID = env.str("BITRIX24_CLIENT_ID", default="")
BITRIX24_CLIENT_SECRET = env.str("BITRIX24_CLIENT_SECRET", default="")
# Never taken from request data: a forged install must not redirect our client_secret.
BITRIX24_OAUTH_SERVER = env.str("BITRIX24_OAUTH_SERVER", default="https://oauth.bitrix.info")
BITRIX24_PORTAL_HOSTS = env.list(
    "BITRIX24_PORTAL_HOSTS",
    default=[
        "*.bitrix24.com",
        "*.bitrix24.ua",
        "*.bitrix24.ru",
        "*.bitrix24.kz",
        "*.bitrix24.by",
        "*.bitrix24.eu",
        "*.bitrix24.de",
        "*.bitrix24.pl",
        "*.bitrix24.es",
        "*.bitrix24.fr",
        "*.bitrix24.it",
        "*.bitrix24.uk",
        "*.bitrix24.in",
        "*.bitrix24.net",
    ],
)

# --- Unitalk ---------------------------------------------------------------------------------
UNITALK_API_URL = env.str("UNITALK_API_URL", default="https://api.unitalk.cloud/api").rstrip("/")

# --- Outbound HTTP ---------------------------------------------------------------------------
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=5.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=30.0)
HTTP_USER_AGENT = env.str("HTTP_USER_AGENT", default="unitalk-bitrix24/0.1")

# --- E-mail to stakeholders --------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="unitalk-app@localhost")

# --- Celery ----------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport, no server needed. Production: redis:// or amqp://
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
    # Writes each message atomically (see bitrixapp/broker.py).
    CELERY_BROKER_TRANSPORT = "bitrixapp.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # kombu's default 1.0 s between empty polls made every hop cost ~0.7-1 s idle; a poll is
        # one listdir of the queue folder (docs/pipeline.md, "Lanes"; bench/latency.py).
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL_S", default=0.02),
    }
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
else:
    # Redis redelivers unacked messages after this; keep it above the hard time limit.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# A separate queue name lets test stacks share a broker with a running `make run`.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Lanes (docs/pipeline.md): the default queue is the background lane, "<it>.interactive" the other.
CELERY_INTERACTIVE_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.interactive"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule")
)
# Beat opens the file before any signal of its own fires: its folder must exist beforehand.
writable_dir(Path(CELERY_BEAT_SCHEDULE_FILENAME).parent)

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "integration.core.log.ContextFilter"},
        # Celery's per-task and beat's per-tick lines: DEBUG (integration/core/log.py, Routine).
        "celery_task_routine": {"()": "integration.core.log.Routine", "prefixes": ("Task ",)},
        "beat_routine": {"()": "integration.core.log.Routine", "prefixes": ("Scheduler: Sending",)},
    },
    "formatters": {"json": {"()": "integration.core.log.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": sys.stdout,
            "filters": ["context"],
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler (debug) and runserver's print plain, unmasked lines:
        # everything goes through the JSON handler above instead (docs/security.md).
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "celery.worker.strategy": {"filters": ["celery_task_routine"]},
        "celery.app.trace": {"filters": ["celery_task_routine"]},
        "celery.beat": {"filters": ["beat_routine"]},
        "urllib3": {"level": "WARNING"},
    },
}

if DEBUG:
    # whitenoise warns about a missing STATIC_ROOT; in production `collectstatic` makes it.
    writable_dir(STATIC_ROOT)

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
# Budget slots kept for the interactive lane (background stops while this many are free).
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
# Our share of the portal's leaky bucket: a few slots and a few percent below the plan, so clock
# skew and network jitter between us and Bitrix24 do not produce 503s.
BITRIX24_RATE_SAFETY_SLOTS = env.int("BITRIX24_RATE_SAFETY_SLOTS", default=3)
BITRIX24_RATE_SAFETY_FACTOR = env.float("BITRIX24_RATE_SAFETY_FACTOR", default=0.97)
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
# An item "calling" this long without a Unitalk call is checked against history/get by meta.
CAMPAIGN_CALLING_STALE_S = env.float("CAMPAIGN_CALLING_STALE_S", default=600.0)
# Items loaded at most per campaign (a huge source is paged, never one request).
CAMPAIGN_MAX_ITEMS = env.int("CAMPAIGN_MAX_ITEMS", default=20000)

# --- Fallback routing (integration/routing, docs/routing.md) -------------------------------------
INSTALLED_APPS += ["integration.routing"]
#: A line presence marks failing is not dialled for this long after it was marked; a click
#: after it is a probe (the line may work again), rerouted if it fails again.
ROUTING_LINE_FAILING_HOLD_S = env.float("ROUTING_LINE_FAILING_HOLD_S", default=600.0)
#: How often beat looks for callback items left open past the portal's escalation minutes.
ROUTING_ESCALATE_TICK_S = env.float("ROUTING_ESCALATE_TICK_S", default=60.0)
CELERY_BEAT_SCHEDULE["routing-escalate"] = {
    "task": "routing.escalate_due",
    "schedule": ROUTING_ESCALATE_TICK_S,
}
