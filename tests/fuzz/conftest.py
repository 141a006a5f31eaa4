"""The fuzz suite's figures: requests and status histogram per door, printed after the run and
written to var/fuzz/report.json (the figures quoted in reports come from there)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

FIGURES: dict[str, Counter[int]] = defaultdict(Counter)
REPORT = Path(__file__).resolve().parents[2] / "var" / "fuzz" / "report.json"


def record(door: str, status: int) -> None:
    FIGURES[door][status] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    rows = {
        door: {
            "requests": sum(counts.values()),
            "statuses": {str(k): v for k, v in sorted(counts.items())},
            "5xx": sum(v for k, v in counts.items() if k >= 500),
        }
        for door, counts in sorted(FIGURES.items())
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(rows, indent=2) + "\n")
    terminalreporter.section("fuzz figures per door")
    for door, row in rows.items():
        histogram = " ".join(f"{k}:{v}" for k, v in row["statuses"].items())
        terminalreporter.write_line(
            f"{door:<14} requests={row['requests']:<5} 5xx={row['5xx']}  {histogram}"
        )
