"""compose.yaml: the services an operator expects, wired as the Procfile and settings need."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.units import procfile, without_defaults
from tests.support.processes import ROOT

APP_SERVICES = ("release", "web", "worker", "worker-interactive", "beat")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match[1])


def _default(value: str) -> str:
    """The value compose uses when the variable is unset: `${X:-default}` -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_every_service_is_there(compose):
    assert set(compose["services"]) == {"postgres", "redis", "rabbitmq", *APP_SERVICES}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_one_image_read_only_and_unprivileged(compose, name):
    service = compose["services"][name]
    assert service["build"] == "."
    assert service["image"] == "unitalk-app:latest"
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service.get("user") in (None, "10001:10001")  # the image's own user otherwise


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_get_secrets_from_the_operator_and_services_by_name(compose, name):
    env = compose["services"][name]["environment"]
    for secret in ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY"):
        assert re.fullmatch(rf"\$\{{{secret}:\?.+\}}", env[secret]), "required, no default"
    assert urlsplit(_default(env["DATABASE_URL"])).hostname == "postgres"
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    broker = urlsplit(_default(env["CELERY_BROKER_URL"]))
    rabbit = compose["services"]["rabbitmq"]["environment"]
    assert broker.scheme == "amqp"
    assert broker.hostname == "rabbitmq"
    assert broker.username == rabbit["RABBITMQ_DEFAULT_USER"]
    assert broker.path.lstrip("/") == rabbit["RABBITMQ_DEFAULT_VHOST"]
    assert "DJANGO_DEBUG" not in env
    assert "DJANGO_ENV_FILE" not in env


def test_every_app_variable_is_one_the_app_documents(compose):
    listed = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    used = {key for name in APP_SERVICES for key in compose["services"][name]["environment"]}
    assert used - listed == set()


def test_release_migrates_before_web_worker_and_beat_start(compose):
    services = compose["services"]
    assert services["release"]["command"] == ["python", "manage.py", "release", "--no-static"]
    assert services["release"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["release"] == {"condition": "service_completed_successfully"}


def test_processes_run_the_procfile_commands(compose):
    services = compose["services"]
    web = services["web"]["command"]
    assert web[:4] == ["gunicorn", "bitrixapp.wsgi", "--config", "gunicorn.conf.py"]
    for name in ("worker", "worker-interactive", "beat"):
        # ["sh", "-c", 'exec celery ... --loglevel "$$LOG_LEVEL"']: $$ is compose's escape for $
        shell = services[name]["command"][-1].removeprefix("exec ")
        shell = re.sub(r'"\$\$(\w+)"', r"${\1}", shell)
        assert shell == without_defaults(procfile()[name])


def test_worker_stop_grace_covers_the_hard_task_time_limit(compose, settings):
    grace = _seconds(compose["services"]["worker"]["stop_grace_period"])
    assert grace > settings.CELERY_TASK_TIME_LIMIT


def test_beat_keeps_its_schedule_in_a_volume_at_the_images_var_dir(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    var_dir = re.search(r"APP_VAR_DIR=(\S+)", dockerfile)[1]
    volumes = compose["services"]["beat"]["volumes"]
    assert f"beat-state:{var_dir}" in volumes
    assert "deploy" not in compose["services"]["beat"]  # one beat, never replicated


def test_rabbitmq_consumer_timeout_exceeds_the_longest_unacknowledged_message(compose, settings):
    mount = next(v for v in compose["services"]["rabbitmq"]["volumes"] if "conf.d" in v)
    conf = ROOT / mount.split(":")[0]
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf.read_text(), re.M)[1])
    # Late acks: a message is unacked from delivery to the end of its task. Longest: a short
    # retry's countdown, waiting behind a running task (prefetch 1), then its own run.
    longest_s = settings.JOB_SHORT_RETRY_S + 2 * settings.CELERY_TASK_TIME_LIMIT
    assert longest_s == 370  # the figure docs/operations.md and the conf file give
    assert timeout_ms / 1000 > 2 * longest_s
    assert Path(conf).is_file()
