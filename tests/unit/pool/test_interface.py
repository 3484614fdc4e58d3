"""Covers: sidecar.pool.interface, sidecar.routing.registry, sidecar.routing.dask_pool,
sidecar.observability.views, sidecar.observability.emf, sidecar.observability.diagnostics.

One registry of pools behind one interface: the primary is a pool like the others (first, named
``primary``), lookups and order, the lifecycle verbs run once per pool in order, and the views
(readiness, ``diag workers``/``memory``, EMF) see every pool. Fakes implement ``ManagedPool``;
both real kinds (``SupervisedPool``, ``DaskPool``) are checked to implement it structurally:
every member present, every method with the Protocol's parameters. No process is started.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from sidecar.config.model import load
from sidecar.loop import Loop
from sidecar.observability.diagnostics import Diagnostics
from sidecar.observability.emf import emf_records
from sidecar.observability.views import gather_readiness
from sidecar.pool.interface import PRIMARY, ManagedPool, PoolRegistry
from sidecar.routing.dask_pool import DaskPool
from sidecar.routing.registry import SupervisedPool, build_pools


class FakePool:
    """A ``ManagedPool`` that notes each verb in a shared journal."""

    def __init__(self, name: str, journal: list[tuple[str, str]], *, kind: str = "local",
                 ready: bool = True, busy: bool = False) -> None:
        self.name, self.kind, self.journal = name, kind, journal
        self.local: Any = object() if kind == "local" else None
        self.is_ready, self.is_busy = ready, busy
        self.submitted: list[Any] = []

    def start(self) -> None:
        self.journal.append(("start", self.name))

    def start_supervision(self) -> None:
        self.journal.append(("start_supervision", self.name))

    def begin_shutdown(self) -> None:
        self.journal.append(("begin_shutdown", self.name))

    def busy(self) -> bool:
        return self.is_busy

    def terminate(self) -> None:
        self.journal.append(("terminate", self.name))

    def submit(self, call: Any) -> None:
        self.submitted.append(call)

    def executor(self) -> Any:
        return self

    def view(self, breaker_open: bool) -> dict[str, Any]:
        return {"name": self.name, "breaker_open": breaker_open}

    def worker_table(self) -> list[dict[str, Any]]:
        return [{"id": 1, "pid": 100 + len(self.name), "state": "idle"}] if self.local else []

    def memory(self, now: float) -> list[dict[str, Any]]:
        return [{"worker": 1, "pid": 100 + len(self.name), "state": "busy", "rss": 30 << 20,
                 "rss_baseline": None, "growth": None}] if self.local else []

    def readiness(self) -> tuple[bool, str]:
        return self.is_ready, ("1 of 1 workers ready" if self.is_ready else "no worker starts")


def registry(journal: list[tuple[str, str]]) -> PoolRegistry:
    return PoolRegistry([FakePool(PRIMARY, journal), FakePool("ml", journal),
                         FakePool("cluster", journal, kind="dask")])


def test_a_fake_and_both_real_kinds_implement_the_interface() -> None:
    assert isinstance(FakePool("x", []), ManagedPool)
    config = load(text="python3:\n  pools:\n    ml: {pool: {initial-size: 1}}\n"
                       "    cluster: {kind: dask, address: 'tcp://127.0.0.1:1'}\n")
    pools = build_pools(Loop(), config, "")  # nothing started: no process, no connection
    assert pools.names() == [PRIMARY, "ml", "cluster"]
    assert [type(p) for p in pools] == [SupervisedPool, SupervisedPool, DaskPool]
    assert [p.kind for p in pools] == ["local", "local", "dask"]
    for pool in pools:
        assert isinstance(pool, ManagedPool), type(pool)
    assert pools.primary.local is not None and pools["cluster"].local is None


@pytest.mark.parametrize("kind", [SupervisedPool, DaskPool, FakePool])
def test_every_method_takes_the_protocols_parameters(kind: type) -> None:
    for name, member in vars(ManagedPool).items():
        if name.startswith("_") or not callable(member):
            continue
        wanted = list(inspect.signature(member).parameters)
        got = list(inspect.signature(getattr(kind, name)).parameters)
        assert got == wanted, f"{kind.__name__}.{name}{got} is not ManagedPool's {wanted}"


def test_the_primary_is_first_and_names_are_unique() -> None:
    with pytest.raises(ValueError, match="first pool must be the primary"):
        PoolRegistry([FakePool("ml", []), FakePool(PRIMARY, [])])
    with pytest.raises(ValueError, match="two pools named 'ml'"):
        PoolRegistry([FakePool(PRIMARY, []), FakePool("ml", []), FakePool("ml", [])])
    with pytest.raises(ValueError):
        PoolRegistry([])


def test_lookups_and_order() -> None:
    pools = registry([])
    assert pools.names() == [PRIMARY, "ml", "cluster"] and len(pools) == 3
    assert pools.primary is pools[PRIMARY] is pools.get(PRIMARY)
    assert "ml" in pools and "nope" not in pools and pools.get("nope") is None
    with pytest.raises(KeyError):
        pools["nope"]
    assert [p.name for p in pools.of_kind("dask")] == ["cluster"]
    assert [name for name, _ in pools.local_pools()] == [PRIMARY, "ml"]
    assert pools.executors() == {p.name: p for p in pools}
    views = pools.views({"ml"})
    assert list(views) == [PRIMARY, "ml", "cluster"]
    assert [v["breaker_open"] for v in views.values()] == [False, True, False]


def test_start_drain_and_close_run_once_per_pool_in_order() -> None:
    journal: list[tuple[str, str]] = []
    pools = registry(journal)
    pools.start()
    pools.start_supervision()
    pools.begin_shutdown()
    pools.terminate()
    order = [PRIMARY, "ml", "cluster"]
    assert journal == [(verb, name) for verb in ("start", "start_supervision",
                                                 "begin_shutdown", "terminate")
                       for name in order]


def test_busy_while_any_pool_has_a_call() -> None:
    pools = registry([])
    assert not pools.busy()
    pools["cluster"].is_busy = True  # type: ignore[attr-defined]
    assert pools.busy()


def test_readiness_needs_every_local_pool_and_tells_the_clusters() -> None:
    pools = registry([])
    ready, reason = gather_readiness("running", pools)
    assert ready and reason == ("ready: primary (local): 1 of 1 workers ready; ml (local): "
                                "1 of 1 workers ready; cluster (dask): 1 of 1 workers ready")
    pools["cluster"].is_ready = False  # type: ignore[attr-defined]
    assert gather_readiness("running", pools)[0]  # a cluster down: told, not required
    pools["ml"].is_ready = False  # type: ignore[attr-defined]
    assert gather_readiness("running", pools) == (False, "not ready: pool ml: no worker starts")
    assert gather_readiness("draining", pools) == (False, "not ready: the sidecar is draining")
    alone = PoolRegistry([FakePool(PRIMARY, [])])
    assert gather_readiness("running", alone) == (True, "ready: 1 of 1 workers ready")


def test_diag_workers_and_memory_show_every_local_pool() -> None:
    diagnostics = Diagnostics(Loop(), registry([]), dict, performance_factor=lambda: 3.0)
    rows = diagnostics.run({"command": "workers"})
    assert [(r["pool"], r["pid"]) for r in rows] == [(PRIMARY, 107), ("ml", 102)]
    memory = diagnostics.run({"command": "memory"})
    assert [(r["pool"], r["pid"]) for r in memory["workers"]] == [(PRIMARY, 107), ("ml", 102)]
    assert "pool ml worker 1 (pid 102): RSS 30.0 MiB" in memory["report"]


def local_view(name: str, accepted: int) -> dict[str, Any]:
    return {"name": name, "status": "HEALTHY", "workers": [],
            "size": {"target": 2, "ready": 2, "spares_ready": 0},
            "queue": {"length": 0}, "utilization": 0.5, "resources": {"rss_total": 1 << 20},
            "counters": {"accepted": accepted, "succeeded": accepted, "crashes": 0,
                         "spawned": 2, "spawn_failures": 0, "recycled": 0}, "errors": {}}


def test_emf_has_a_record_per_pool_with_its_own_deltas() -> None:
    health = {"status": "HEALTHY", "pool": local_view(PRIMARY, 10),
              "pools": {"ml": local_view("ml", 4)},
              "breakers": {"ml": {"state": "open"}}, "alerts": {"firing": [], "counts": {}},
              "sidecar_rss": 50 << 20}
    records, readings = emf_records(health, {}, "ns", 1)
    assert [r["Pool"] for r in records] == [PRIMARY, "ml"]
    primary, ml = records
    assert (primary["Calls"], ml["Calls"]) == (10.0, 4.0)
    assert (primary["BreakerOpen"], ml["BreakerOpen"]) == (0.0, 1.0)
    assert "SidecarRss" in primary and "SidecarRss" not in ml and "AlertsSent" not in ml
    health["pools"]["ml"]["counters"]["accepted"] = 7
    records, _ = emf_records(health, readings, "ns", 2)
    assert (records[0]["Calls"], records[1]["Calls"]) == (0.0, 3.0)
