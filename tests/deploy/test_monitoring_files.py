"""The Grafana dashboard and the Prometheus alert rules ask for metrics the app exposes, and each
alert's runbook entry exists in docs/operations.md."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT

DASHBOARD = ROOT / "docs" / "grafana" / "unitalk-app-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "unitalk-app-alerts.yml"
NAME = re.compile(r"\bunitalk_app_[a-z_]+")
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


@pytest.fixture
def exposed(client, settings, db) -> set[str]:
    settings.METRICS_ALLOW_IPS = ["127.0.0.1"]
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.content.decode())
    return {family.name + suffix for family in families for suffix in SUFFIXES}


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-")


def test_every_dashboard_query_uses_exposed_metrics(exposed):
    panels = json.loads(DASHBOARD.read_text())["panels"]
    used = {n for p in panels for t in p["targets"] for n in NAME.findall(t["expr"])}
    assert len(panels) >= 12
    assert used
    assert used <= exposed, used - exposed


def test_every_alert_uses_exposed_metrics_and_has_a_runbook_entry(exposed):
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    used = {n for rule in rules for n in NAME.findall(rule["expr"])}
    assert used <= exposed, used - exposed
    headings = re.findall(r"^#{2,4} (.+)$", (ROOT / "docs" / "operations.md").read_text(), re.M)
    anchors = {_anchor(h) for h in headings}
    runbooks = {rule["annotations"]["runbook"].split("#", 1)[1] for rule in rules}
    assert runbooks <= anchors, runbooks - anchors
