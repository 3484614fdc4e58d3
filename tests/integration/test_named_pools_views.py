"""Covers: sidecar.observability.diagnostics, sidecar.observability.views, sidecar.pool.interface,
sidecar.routing.registry, sidecar.http.handler.

Every view reads every pool through the registry: a real ``py3sidecar serve`` with a named
local pool beside the primary shows that pool's workers in ``py3sidecar diag workers --json``,
``diag memory --json``, ``diag health`` and ``/api/dashboard``; ``/readyz`` counts it, and is 503
naming it while it has no worker ready.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from sidecar.testing import SidecarProcess, wait_until

pytestmark = pytest.mark.timeout(120)

NAMED = {"stats": {"pool": {"initial-size": 1, "min-size": 1, "max-size": 2, "spares": 0}}}


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0}, "pools": NAMED},
                        workdir=str(tmp_path_factory.mktemp("views"))) as p:
        client = p.client(timeout=30)
        wait_until(lambda: client.health()["pools"]["stats"]["size"]["ready"] >= 1, 30,
                   message="the named pool 'stats' has a ready worker")
        yield p


def pids(view: dict) -> set[int]:
    return {w["pid"] for w in view["workers"] if w["state"] != "stopping"}


def diag_json(proc: SidecarProcess, command: str, *argv: str) -> object:
    done = subprocess.run([sys.executable, "-m", "sidecar", "diag", command, *argv, "--json",
                           "--endpoint", proc.endpoint], capture_output=True, text=True,
                          env=proc.env, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_diag_workers_lists_every_pool_each_row_naming_its_pool(proc) -> None:
    health = proc.client().health()
    rows = diag_json(proc, "workers")
    by_pool: dict[str, set[int]] = {}
    for row in rows:
        if row["state"] != "stopping":
            by_pool.setdefault(row["pool"], set()).add(row["pid"])
    assert by_pool == {"primary": pids(health["pool"]), "stats": pids(health["pools"]["stats"])}
    assert rows[0]["pool"] == "primary"  # the registry's order: the primary first


def test_diag_memory_has_the_named_pools_workers(proc) -> None:
    stats = pids(proc.client().health()["pools"]["stats"])
    memory = diag_json(proc, "memory")
    rows = [r for r in memory["workers"] if r["pool"] == "stats"]
    assert {r["pid"] for r in rows} == stats and all(r["rss"] > 1 << 20 for r in rows)
    assert "pool stats worker" in memory["report"]
    # --top asks the named pool's idle workers too (tracemalloc starts on the first ask)
    top = diag_json(proc, "memory", "--top", "3")
    assert all("tracing" in r for r in top["workers"] if r["pool"] == "stats"), top


def test_diag_health_reports_each_local_pool(proc) -> None:
    health = proc.client().diagnostics("health")
    assert set(health["pools"]) == {"primary", "stats"}
    assert health["pools"]["stats"]["pool_size"] == 1
    assert "--- Pool stats ---" in health["report"]
    assert {w["pool"] for w in health["workers"]} == {"primary", "stats"}


def test_dashboard_has_a_card_with_the_named_pools_worker_table(proc) -> None:
    status, body = get(proc.http_url + "/api/dashboard")
    assert status == 200, body
    cards = {c["name"]: c for c in json.loads(body)["pools"]}
    assert list(cards) == ["primary", "stats"]
    stats = pids(proc.client().health()["pools"]["stats"])
    assert {w["pid"] for w in cards["stats"]["workers"]} == stats


def test_readyz_counts_every_pool(proc) -> None:
    status, body = get(proc.http_url + "/readyz")
    assert status == 200, body
    assert "primary (local): 1 of 1 workers ready" in body
    assert "stats (local): 1 of 1 workers ready" in body


def test_readyz_is_503_naming_a_named_pool_that_cannot_start(tmp_path) -> None:
    broken = {"stats": {"worker": {"python": "/nonexistent/python3"},
                        "pool": {"initial-size": 1, "min-size": 1, "spares": 0}}}
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0}, "pools": broken},
                        workdir=str(tmp_path)) as proc:
        status, body = get(proc.http_url + "/readyz")
        assert status == 503 and "pool stats" in body, body
        assert "primary" not in body  # the primary is ready: only what is missing is named
