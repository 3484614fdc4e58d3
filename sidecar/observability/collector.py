"""Builds the Prometheus families of ``sidecar.observability.metrics`` at scrape time (a custom
collector).

Owns: turning one snapshot into metric families: names, labels (pool, worker *slot* rather than
pid, so the series stay bounded as workers come and go), the sidecar process's own RSS and fds.
Must not touch: the loop's state: ``SidecarCollector.snapshot`` asks the loop thread for a copy
(``sidecar.observability.metrics.ask``, bounded wait) and builds everything from that copy in the
HTTP thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sidecar.observability.metrics import (
    KNOWN_OUTCOMES,
    PREFIX,
    SCRAPE_WAIT,
    LoopUnresponsive,
    Metrics,
    ask,
)


class SidecarCollector:
    """Builds every family at scrape time from one snapshot the loop thread takes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.process = psutil.Process()

    def describe(self) -> list[Metric]:
        return []  # families vary with the pools and breakers configured: never pre-declared

    def snapshot(self) -> dict[str, Any] | None:
        m = self.metrics
        if m.loop is None:
            return None
        try:
            return ask(m.loop, lambda: {**m.copy_numbers(), **m.gather()}, SCRAPE_WAIT)
        except LoopUnresponsive:
            return None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        yield from self.process_families(snap is not None)
        if snap is None:
            return
        yield from self.call_families(snap)
        yield from self.pool_families(snap)
        yield from self.chain_families(snap)

    def process_families(self, responsive: bool) -> Iterator[Metric]:
        with self.process.oneshot():
            rss, fds = self.process.memory_info().rss, self.process.num_fds()
        yield _gauge("process_resident_memory_bytes", "The sidecar process's RSS", rss)
        yield _gauge("process_open_fds", "File descriptors the sidecar process holds", fds)
        yield _gauge("loop_responsive", "1 when the event loop answered this scrape in time",
                     1 if responsive else 0)

    def call_families(self, s: dict[str, Any]) -> Iterator[Metric]:
        calls = CounterMetricFamily(f"{PREFIX}calls", "Requests answered, by op and outcome "
                                    "(ok or the error kind)", labels=["op", "outcome"])
        for (op, outcome), n in sorted(s["calls"].items()):
            calls.add_metric([op, outcome if outcome in KNOWN_OUTCOMES else "internal"], n)
        yield calls
        by_pool = CounterMetricFamily(f"{PREFIX}pool_calls", "execute/call requests answered, "
                                      "by the pool they asked for and outcome",
                                      labels=["pool", "outcome"])
        for (pool, outcome), n in sorted(s["pool_calls"].items()):
            by_pool.add_metric([pool, outcome if outcome in KNOWN_OUTCOMES else "internal"], n)
        yield by_pool
        refused = CounterMetricFamily(f"{PREFIX}requests_refused", "Requests refused before "
                                      "they reached an op (size, decoding, token, shape)",
                                      labels=["kind"])
        for kind, n in sorted(s["refused"].items()):
            refused.add_metric([kind], n)
        yield refused
        m = self.metrics
        yield m.duration.family(f"{PREFIX}call_duration_seconds", "execute/call time from "
                                "acceptance to answer", data=s["duration"])
        yield m.queue_wait.family(f"{PREFIX}queue_wait_seconds", "Time a call waited for a "
                                  "worker", data=s["queue_wait"])
        yield m.output_size.family(f"{PREFIX}output_size_bytes", "Size of execute/call "
                                   "replies", data=s["output_size"])
        yield _gauge("loop_lag_seconds", "How late the loop ran its last 1 s timer",
                     s["loop_lag"])
        yield _gauge("loop_lag_max_seconds", "The worst loop lag since the previous scrape",
                     s["loop_lag_max"])

    def pool_families(self, s: dict[str, Any]) -> Iterator[Metric]:
        queue = GaugeMetricFamily(f"{PREFIX}queue_length", "Calls waiting for a worker",
                                  labels=["pool"])
        capacity = GaugeMetricFamily(f"{PREFIX}queue_capacity", "python3.pool.queue-size",
                                     labels=["pool"])
        states = GaugeMetricFamily(f"{PREFIX}workers", "Worker processes by state",
                                   labels=["pool", "state"])
        target = GaugeMetricFamily(f"{PREFIX}pool_target_size", "Members the pool aims for",
                                   labels=["pool"])
        score = GaugeMetricFamily(f"{PREFIX}worker_health_score", "Health score (0-100) per "
                                  "worker slot", labels=["pool", "slot"])
        rss = GaugeMetricFamily(f"{PREFIX}worker_resident_memory_bytes", "RSS per worker slot",
                                labels=["pool", "slot"])
        spawned = CounterMetricFamily(f"{PREFIX}worker_spawns", "Worker processes started",
                                      labels=["pool"])
        spawn_failed = CounterMetricFamily(f"{PREFIX}worker_spawn_failures", "Worker starts "
                                           "that failed", labels=["pool"])
        for pool in s["pools"]:
            name = pool["name"]
            queue.add_metric([name], pool["queue"]["length"])
            capacity.add_metric([name], pool["queue"]["capacity"])
            target.add_metric([name], pool["size"]["target"])
            for state, n in pool["workers_by_state"].items():
                states.add_metric([name, state], n)
            spawned.add_metric([name], pool["counters"]["spawned"])
            spawn_failed.add_metric([name], pool["counters"]["spawn_failures"])
            for slot, worker in enumerate(slot_order(pool["workers"])):
                score.add_metric([name, str(slot)], worker["score"])
                rss.add_metric([name, str(slot)], worker["rss"])
        status = GaugeMetricFamily(f"{PREFIX}pool_status", "1 for each pool's current "
                                   "status (HEALTHY, DEGRADED, UNHEALTHY)",
                                   labels=["pool", "status"])
        for pool in [*s["pools"], *s["dask"]]:
            status.add_metric([pool["name"], pool["status"]], 1)
        yield from (queue, capacity, states, target, score, rss, spawned, spawn_failed, status)
        yield from dask_families(s["dask"])
        restarts = CounterMetricFamily(f"{PREFIX}worker_restarts", "Workers replaced, by reason",
                                       labels=["reason"])
        for reason, n in sorted(s["restarts"].items()):
            restarts.add_metric([reason], n)
        yield restarts
        failures = CounterMetricFamily(f"{PREFIX}failures", "Failures recovery classified, by "
                                       "type", labels=["type"])
        for kind, n in sorted(s["failures_by_type"].items()):
            failures.add_metric([str(kind)], n)
        yield failures
        yield _gauge("health_status", "1 for the pool's current status (HEALTHY, DEGRADED, "
                     "UNHEALTHY)", labels={"status": s["status"]}, value=1)
        yield _gauge("recovery_escalated", "1 while recovery has escalated",
                     1 if s["escalated"] else 0)

    def chain_families(self, s: dict[str, Any]) -> Iterator[Metric]:
        from bridge.breaker import BreakerState

        breaker = GaugeMetricFamily(f"{PREFIX}breaker_state", "1 for each breaker's current "
                                    "state, 0 for the others", labels=["breaker", "state"])
        for name, state in sorted(s["breakers"].items()):
            for candidate in BreakerState:
                breaker.add_metric([name, str(candidate)], 1 if state == candidate else 0)
        yield breaker
        served = CounterMetricFamily(f"{PREFIX}fallback_served", "Calls answered by each "
                                     "execution strategy", labels=["strategy"])
        passed = CounterMetricFamily(f"{PREFIX}fallback_fell_through", "Calls a strategy passed "
                                     "on to the next one", labels=["strategy"])
        for name, n in s["fallback"]["served"].items():
            served.add_metric([name], n)
        for name, n in s["fallback"]["fell_through"].items():
            passed.add_metric([name], n)
        yield served
        yield passed
        yield CounterMetricFamily(f"{PREFIX}fallback_exhausted", "Calls no strategy could serve",
                                  value=s["fallback"]["exhausted"])


def scrape_view(health: dict[str, Any]) -> dict[str, Any]:
    """What the collector needs, from the ``health`` op's answer (taken in the loop thread)."""
    fallback = health["fallback"]
    named = health.get("pools", {})
    pools = [health["pool"]] + [p for p in named.values() if p.get("kind") == "local"]
    return {"pools": pools, "status": health["status"],
            "dask": [p for p in named.values() if p.get("kind") == "dask"],
            "escalated": health["recovery"]["escalated"],
            "failures_by_type": health["recovery"]["failures_by_type"],
            "breakers": {name: b["state"] for name, b in health["breakers"].items()},
            "fallback": fallback}


def dask_families(pools: list[dict[str, Any]]) -> Iterator[Metric]:
    """``kind: dask`` pools: the cluster as the scheduler reports it, and our calls there."""
    figures = {"connected": "1 while the sidecar is connected to the pool's scheduler",
               "workers": "Dask workers the scheduler knows",
               "tasks_running": "Tasks running on the cluster's workers",
               "memory": "Memory the cluster's workers use, bytes",
               "in_flight": "Calls of ours submitted and not yet answered"}
    for key, doc in figures.items():
        family = GaugeMetricFamily(f"{PREFIX}dask_{key}", doc, labels=["pool"])
        for pool in pools:
            family.add_metric([pool["name"]], float(pool[key]))
        yield family


def slot_order(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live workers in a stable order (members, then spares, each by age): slot numbers stay
    bounded by the pool's size however many processes have come and gone."""
    live = [w for w in workers if w["state"] != "stopping"]
    return sorted(live, key=lambda w: (w["role"] != "member", w["id"]))


def _gauge(name: str, doc: str, value: float = 0.0,
           labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family
