"""Covers: sidecar.deploy.bundle, sidecar.observability.metrics.

The Grafana dashboard shipped in the bundle queries only metrics a real sidecar exposes."""

import json
import re
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sidecar.deploy.bundle import build_bundle
from sidecar.testing import SidecarProcess

DASHBOARD = (Path(__file__).resolve().parents[2] / "sidecar" / "observability" / "grafana"
             / "py3sidecar.json")
METRIC = re.compile(r"\bpy3sidecar_[a-z0-9_]+")


def queried_metrics(dashboard: dict) -> set[str]:
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(METRIC.findall(target["expr"]))
    for variable in dashboard["templating"]["list"]:
        names |= set(METRIC.findall(variable.get("query", "")))
    return names


def exposed_names(body: str) -> set[str]:
    """Sample names, plus the _total name of counters with no sample yet (alerts sent)."""
    names = set()
    for family in text_string_to_metric_families(body):
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_every_metric_the_dashboard_queries_is_in_a_real_scrape():
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = queried_metrics(dashboard)
    assert len(wanted) >= 20  # the dashboard covers the metrics, not a token few
    with SidecarProcess({"pool": {"initial-size": 1}}) as proc:
        proc.client().execute("1")
        with urllib.request.urlopen(proc.http_url + "/metrics", timeout=10) as response:
            exposed = exposed_names(response.read().decode())
    missing = sorted(wanted - exposed)
    assert not missing, f"the Grafana dashboard queries metrics the sidecar lacks: {missing}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"]
               for t in p["targets"])


def test_the_bundle_ships_the_dashboard(tmp_path):
    report = build_bundle(tmp_path / "bundle", java_dir=tmp_path / "no-java")
    shipped = tmp_path / "bundle" / "grafana" / "py3sidecar.json"
    assert shipped in report.files
    assert shipped.read_bytes() == DASHBOARD.read_bytes()
