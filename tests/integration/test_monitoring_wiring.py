"""Covers: sidecar.service, sidecar.alerts.policy, sidecar.observability.metrics,
    sidecar.routing.quarantine.

The observability parts wired together in one real sidecar: a quarantined request raises an
alert; every alert sent is counted in /metrics and listed on the dashboard; HTTP diagnostics
that wait on workers (a Pending in the loop) are answered."""

import json

from sidecar.testing import SidecarProcess, wait_until
from tests.integration.test_metrics_http import get, scrape, value

CRASH = "import os\nos._exit(7)"


def test_quarantine_alert_counted_and_shown(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 1},
                         "circuit-breaker": {"enabled": False},
                         "alerts": {"throttle": {"group-wait": "50ms",
                                                 "group-interval": "200ms"}},
                         "scaling": {"enabled": False}},
                        workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        kinds = []
        for _ in range(3):
            try:
                client.execute(CRASH)
                kinds.append("ok")
            except Exception as exc:  # noqa: BLE001 - the kinds are what is checked
                kinds.append(exc.kind)
        assert kinds == ["crashed", "crashed", "quarantined"], kinds

        def quarantine_alert():
            firing = client.health()["alerts"]["firing"]
            return [a for a in firing if a["key"].startswith("quarantine/")]
        alert = wait_until(quarantine_alert, 10, message="the quarantine alert")[0]
        assert alert["level"] == "WARNING" and "execute" in alert["summary"]

        url = proc.http_url
        _, samples = wait_until(
            lambda: (lambda f_s: f_s if value(f_s[1], "py3sidecar_alerts_sent_total",
                                             channel="log", level="WARNING") else None)(
                scrape(url)), 10, message="alerts counted in /metrics")
        assert value(samples, "py3sidecar_alerts_sent_total", channel="log",
                     level="CRITICAL") >= 1  # the two worker deaths
        assert value(samples, "py3sidecar_quarantined_requests_total") >= 1
        status, _, body = get(url + "/api/dashboard")
        assert status == 200
        titles = [a["title"] for a in json.loads(body)["alerts"]]
        assert any("quarantined" in t for t in titles), titles

        client.quarantine("clear")
        wait_until(lambda: not quarantine_alert(), 10, message="the alert resolved on clear")


def test_http_diagnostics_that_wait_on_workers(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 0},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        status, _, body = get(proc.http_url + "/api/diagnostics/threads", token=proc.token)
        assert status == 200, body
        value_ = json.loads(body)["value"]
        assert "report" in value_ and "worker" in value_["report"].lower(), value_
        status, _, body = get(proc.http_url + "/api/diagnostics/performance", token=proc.token)
        assert status == 200, body
