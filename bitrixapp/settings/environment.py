"""Reading the environment: the one env file DJANGO_ENV_FILE names, the writable folder, secrets.

The only file ever read is the one DJANGO_ENV_FILE names: `make run` points it at the `.env` that
`make` writes on first use (debug on, SQLite, a serverless Celery broker), the tests at
`tests/test.env`. Production sets real environment variables and no DJANGO_ENV_FILE, so a stray
`.env` left in the code folder is never read (docs/operations.md, "Configuration"). With debug
off, every secret must be present or start-up stops with a message naming the variable.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

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
# Whether APP_VAR_DIR was set (the embedded SQLite file then lives under it too).
var_dir_configured = bool(_var_dir_env)
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
