"""Reading the deploy files the way their tools do: systemd units, the Procfile."""

from __future__ import annotations

import re
import shlex

from tests.support.processes import ROOT

UNITS = ROOT / "deploy" / "systemd"
PROCESSES = ("web", "worker", "worker-interactive", "beat")


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) pairs in order (keys repeat: ExecStart, ...)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(name: str, section: str, key: str) -> list[str]:
    return [v for k, v in unit(name).get(section, []) if k == key]


def environment(name: str) -> dict[str, str]:
    """Environment= assignments of a unit's [Service]."""
    env: dict[str, str] = {}
    for line in values(name, "Service", "Environment"):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {n.strip(): c.strip() for n, _, c in (line.partition(":") for line in lines) if c}


def without_defaults(command: str) -> str:
    """`${X:-default}` (sh) as `${X}` (systemd, whose defaults come from Environment=)."""
    return re.sub(r"\$\{(\w+):-[^}]*\}", r"${\1}", command)
