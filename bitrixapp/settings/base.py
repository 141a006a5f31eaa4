"""Django, the database, caches, static files, security, outbound HTTP, Celery and logging.

Every value comes from the environment (bitrixapp/settings/environment.py); the capabilities'
own tunables are in bitrixapp/settings/capabilities.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from bitrixapp.settings.environment import (
    BASE_DIR,
    DEBUG,
    VAR_DIR,
    env,
    required,
    var_dir_configured,
    writable_dir,
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
_SQLITE_DEFAULT = (VAR_DIR if var_dir_configured else BASE_DIR) / "db.sqlite3"
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
# With a host named, kombu does not warn "No hostname was supplied" at every process start.
EMBEDDED_BROKER_URL = "filesystem://localhost/"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=EMBEDDED_BROKER_URL)
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
# Within a lane a click goes first (docs/pipeline.md, "Lanes"): kinds registered urgent are sent
# at CELERY_URGENT_PRIORITY, everything else at the default. Redis pops the lowest number first
# (kombu priority steps 0/3/6/9); RabbitMQ the highest, and only on queues declared with
# x-max-priority (not declared here: there clicks rely on their own lane alone).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_TASK_DEFAULT_PRIORITY = 5
    CELERY_URGENT_PRIORITY = 0
else:
    CELERY_URGENT_PRIORITY = 9
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup would close every database connection before and after each task; with
# this set it only does so every this many tasks, and bitrixapp/celery.py checks them around
# each task as Django does around a request (CONN_MAX_AGE, broken connections).
CELERY_DB_REUSE_MAX = 1000
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
