"""Covers: sidecar.observability.diagnostics, sidecar.observability.redaction,
    sidecar.cli.commands.

Diagnostics (spec 7B) against a real sidecar: over the bridge and through ``py3sidecar diag``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bridge.protocol import BadRequest, SidecarError
from sidecar.testing import SidecarProcess

INLINE_TOKEN, ENV_PASSWORD = "diag-inline-token-5551", "diagdbpw77"


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    # inline secrets, so `diag config` has something to redact (see test_bad_commands...)
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "fallback": {"remote": {"token": INLINE_TOKEN}},
                         "worker": {"env": {"DIAG_DB_URL": f"postgres://u:{ENV_PASSWORD}@db/x"}}},
                        workdir=str(tmp_path_factory.mktemp("diag"))) as p:
        p.wait_full_strength(2)
        yield p


def diag_cli(proc: SidecarProcess, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sidecar", "diag", *argv, "--endpoint",
                           proc.endpoint], capture_output=True, text=True, env=proc.env,
                          timeout=30)


def test_health_is_the_spec_report(proc) -> None:
    client = proc.client()
    client.execute("1+1")
    value = client.diagnostics("health")
    report = value["report"].splitlines()
    assert report[0] == "=== Python3 Process Pool Health Report ==="
    assert report[1].startswith("Time: 20") and report[2] == "Pool Size: 2 (+1 warm spare)"
    # members and the warm spare counted apart: never "Pool Size: 2 / Healthy: 3"
    assert value["healthy"] == 2 and value["spares"] == 1
    assert report[3] == (f"Healthy: 2 of 2 members, {value['healthy_spares']} of 1 spares")
    for worker in value["workers"]:
        assert f"Executor {worker['id']} (pid {worker['pid']}" in value["report"]
    assert value["report"].count("Health Score: ") == len(value["workers"])
    assert "Executions: " in value["report"] and "Last Used: " in value["report"]


def test_history_keeps_op_target_first_line_outcome_and_worker_never_arguments(proc) -> None:
    client = proc.client()
    client.execute("secret = 's3cr3t-value'\nlen(secret)")
    client.call("statistics:mean", [11111, 22222, 33333])
    with pytest.raises(SidecarError, match="ZeroDivisionError"):
        client.execute("1/0")
    calls = client.diagnostics("history", limit=3)["calls"]
    assert [c["op"] for c in calls] == ["execute", "call", "execute"]
    assert calls[0]["what"] == "secret = 's3cr3t-value'"   # the first line, as the spec asks
    assert calls[1]["what"] == "statistics:mean" and "22222" not in json.dumps(calls)
    assert [c["outcome"] for c in calls] == ["ok", "ok", "user"]
    assert all(isinstance(c["worker"], int) and c["duration_ms"] > 0 for c in calls)
    with pytest.raises(BadRequest, match="'limit' must be a whole number from 0 to 200"):
        client.diagnostics("history", limit=10_000)


def test_performance_benchmarks_idle_workers_against_their_baselines(proc) -> None:
    value = proc.client().diagnostics("performance", rounds=2)
    rows = {r["worker"]: r for r in value["workers"]}
    measured = [r for r in rows.values() if r.get("now_ms")]
    assert measured, value
    assert all(r["verdict"] in ("ok", "SLOW", "no baseline yet") for r in measured)
    assert any(r["baseline_ms"] and r["ratio"] for r in measured), value
    assert value["report"].startswith("=== Performance (2 rounds")


def test_memory_rss_per_worker_and_top_allocations_on_request(proc) -> None:
    client = proc.client()
    value = client.diagnostics("memory")
    assert value["sidecar_rss"] > 1 << 20
    assert all(r["rss"] > 1 << 20 for r in value["workers"])
    first = client.diagnostics("memory", top=5)   # starts tracemalloc in the idle workers
    assert any(r.get("tracing") for r in first["workers"])
    client.execute("blob = [bytes(1000) for _ in range(3000)]; len(blob)")
    again = client.diagnostics("memory", top=5)
    tops = [a for r in again["workers"] for a in r.get("top_allocations", [])]
    assert tops and all({"where", "size", "count"} <= set(a) for a in tops)


def test_threads_dumps_the_sidecar_and_every_worker_without_killing_anyone(proc) -> None:
    client = proc.client()
    proc.wait_full_strength(2)
    before = {w["pid"] for w in proc.pool()["workers"] if w["state"] in ("idle", "busy")}
    value = client.diagnostics("threads")
    assert any(t["thread"] == "MainThread" and "loop.py" in t["stack"]
               for t in value["sidecar"])
    assert {w["pid"] for w in value["workers"]} >= before
    # faulthandler's dump of each worker's main thread, in its serve loop (waiting for a
    # frame, or just writing a probe's answer)
    assert all("Current thread" in w["stack"] and " in serve" in w["stack"]
               for w in value["workers"]), [w["stack"] for w in value["workers"]]
    assert {w["pid"] for w in proc.pool()["workers"]} >= before   # nobody was stopped
    assert client.execute("2+2").value == 4


def test_bad_commands_and_options_are_bad_requests(proc) -> None:
    client = proc.client()
    with pytest.raises(BadRequest, match="unknown diagnostics command 'nope'; available: "
                       "config, health, history"):
        client.diagnostics("nope")
    with pytest.raises(BadRequest, match="'top' must be a whole number"):
        client.diagnostics("memory", top="ten")
    with pytest.raises(BadRequest, match="'args' must be a map"):
        client.request({"op": "diag", "command": "history", "args": [1]})
    shown = client.diagnostics("config")
    text = json.dumps(shown)
    for secret in (INLINE_TOKEN, ENV_PASSWORD, client.token):
        assert secret not in text  # redacted by key, by value (worker.env), the file's token
    assert shown["python3"]["fallback"]["remote"]["token"] == "<redacted>"
    assert shown["python3"]["worker"]["env"] == {"DIAG_DB_URL": "<redacted>"}


def test_cli_diag_prints_the_report_or_json(proc) -> None:
    text = diag_cli(proc, "health")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("=== Python3 Process Pool Health Report ===")
    as_json = diag_cli(proc, "history", "--limit", "2", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)["calls"]) <= 2
    bad = diag_cli(proc, "nope")
    assert bad.returncode == 1 and "bad_request" in bad.stderr and "nope" in bad.stderr
