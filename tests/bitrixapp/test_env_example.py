import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _listed() -> set[str]:
    return set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))


def test_every_variable_the_settings_read_is_listed_in_env_example():
    settings_src = "".join(p.read_text() for p in (ROOT / "bitrixapp" / "settings").glob("*.py"))
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', settings_src))
    assert read - _listed() == set(), "add these to .env.example with a comment"


def test_every_variable_the_gunicorn_config_reads_is_listed_in_env_example():
    source = (ROOT / "gunicorn.conf.py").read_text()
    read = set(re.findall(r'(?:environ\.get|_int)\(\s*"([A-Z0-9_]+)"', source))
    read |= set(re.findall(r"environ\.get\(\s*'([A-Z0-9_]+)'", source))
    assert {"WEB_CONCURRENCY", "WEB_TIMEOUT", "HOST"} <= read  # the pattern still finds them
    assert read - _listed() == set(), "add these to .env.example with a comment"
