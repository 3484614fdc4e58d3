"""Building every pool the sidecar runs, each with what watches it, into one registry.

Owns: building the pools of ``python3.pools`` (a local pool with its own interpreter or
virtualenv, paths, preload, env, sizes, limits and health settings; or a Dask cluster through
``sidecar.routing.dask_pool``), the primary (``python3.pool``, ``worker``, ...) and the legacy
``python3.fallback.secondary`` pool into one ``sidecar.pool.interface.PoolRegistry``;
``SupervisedPool``, a local pool with its supervision (resources, recovery, watchdog, adaptive
sizing, reload on edit) behind the ``ManagedPool`` interface, and each pool's health view.
Must not touch: routing a call to a pool and breakers (the chain in ``sidecar.routing.chain``),
admission (``sidecar.service``), worker processes (``sidecar.pool.local`` and below), YAML
(``sidecar.config.model``).

    python3.pool + worker + ...  -> SupervisedPool "primary"   (always first)
    python3.pools.<name>         -> SupervisedPool <name>      (kind: local)
                                 -> DaskPool <name>            (kind: dask)
    python3.fallback.secondary   -> SupervisedPool "secondary" (when a chain names it and
                                                                python3.pools has no such pool)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sidecar.config import settings
from sidecar.config.model import Config, HealthConfig, ScalingConfig
from sidecar.loop import Loop
from sidecar.pool.interface import PRIMARY, ManagedPool, PoolRegistry
from sidecar.pool.local import Pool
from sidecar.pool.settings import PoolSettings
from sidecar.supervision.health import pool_status
from sidecar.supervision.recovery import RecoveryOrchestrator
from sidecar.supervision.reload import CodeReloader
from sidecar.supervision.resources import ResourceMonitor
from sidecar.supervision.scaling import AdaptiveSizer
from sidecar.supervision.watchdog import Watchdog

__all__ = ["PRIMARY", "SupervisedPool", "build_pools", "chained_names"]


class SupervisedPool:
    """A local pool and the parts that watch it: a ``ManagedPool`` of kind ``local``."""

    kind = "local"

    def __init__(self, loop: Loop, pool_settings: PoolSettings, health: HealthConfig,
                 scaling: ScalingConfig, config: Config, *, paths: list[str],
                 reload: bool) -> None:
        self.name = pool_settings.name
        self.loop = loop
        self.pool = Pool(loop, pool_settings)
        self.local: Pool | None = self.pool
        self.resources, self.recovery, self.watchdog, self.sizer = supervision(
            loop, self.pool, health, scaling, config)
        self.reloader = CodeReloader(paths, loop.call_soon_threadsafe,
                                     self.pool.renew_workers) if reload else None

    def start(self) -> None:
        self.pool.start()
        if self.reloader is not None:
            self.reloader.start()

    def start_supervision(self) -> None:
        self.watchdog.start()
        self.sizer.start()

    def begin_shutdown(self) -> None:
        self.watchdog.stop()
        self.sizer.stop()
        self.pool.begin_shutdown()

    def busy(self) -> bool:
        return self.pool.busy()

    def terminate(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
        self.pool.terminate()

    def submit(self, call: Any) -> None:
        self.pool.submit(call)

    def executor(self) -> Pool:
        return self.pool

    def worker_table(self) -> list[dict[str, Any]]:
        return self.pool.snapshot()["workers"]

    def memory(self, now: float) -> list[dict[str, Any]]:
        rows = []
        for w in self.pool.workers.values():
            if w.exit is not None:
                continue
            rss = w.sample_rss(now)
            base = w.rss_baseline or None
            rows.append({"worker": w.id, "pid": w.pid, "state": w.state, "rss": rss,
                         "rss_baseline": base, "growth": rss - base if base else None})
        return rows

    def readiness(self) -> tuple[bool, str]:
        ready = self.pool.ready_members()
        if ready:
            return True, f"{ready} of {self.pool.target_size} workers ready"
        return False, (self.pool.unavailable_reason()
                       or "no worker is ready yet (they are starting)")

    def view(self, breaker_open: bool) -> dict[str, Any]:
        """The pool's snapshot with its status, resources and last sizing decision (health)."""
        view = self.pool.snapshot()
        size = view["size"]
        status, reason = pool_status(
            size["ready"], size["target"], size["spares_ready"], size["spares_wanted"],
            [w["status"] for w in view["workers"] if w["role"] == "member"
             and w["state"] != "stopping"],
            self.recovery.escalated, breaker_open, self.resources.overloaded)
        for worker in view["workers"]:
            handle = self.pool.workers.get(worker["id"])
            if handle is not None:
                worker["resources"] = self.resources.worker_view(handle)
        view["kind"] = "local"
        view["status"], view["status_reason"] = status, reason
        view["utilization"] = self.resources.last.utilization
        view["resources"] = self.resources.pool_view()
        view["scaling"] = self.sizer.last_decision
        view["recovery"] = self.recovery.snapshot()
        view["watchdog"] = dict(self.watchdog.counters)
        view["reload"] = self.reloader.snapshot() if self.reloader else None
        return view


def supervision(loop: Loop, pool: Pool, health: HealthConfig, scaling: ScalingConfig,
                config: Config) -> tuple[Any, Any, Any, Any]:
    """The parts that watch a pool: resources, recovery, watchdog, adaptive sizing."""
    c = config.python3
    resources = ResourceMonitor(pool, **settings.overload_thresholds(scaling))
    recovery = RecoveryOrchestrator(pool, settings.recovery_settings(c.recovery))
    watchdog = Watchdog(loop, pool, recovery, resources, settings.watchdog_settings(health),
                        settings.health_settings(health))
    sizer = AdaptiveSizer(loop, pool, settings.scaling_settings(scaling))
    return resources, recovery, watchdog, sizer


def build_primary(loop: Loop, config: Config, stack_root: str) -> SupervisedPool:
    c = config.python3
    return SupervisedPool(loop, dataclasses.replace(settings.pool_settings(config),
                                                    stack_root=stack_root),
                          c.health, c.scaling, config, paths=c.worker.paths,
                          reload=c.worker.reload)


def chained_names(config: Config) -> list[str]:
    """Every strategy name a chain mentions, primary first, each once, in order."""
    c = config.python3
    names = [PRIMARY, *c.fallback.strategies[1:]]
    for name, pool in c.pools.items():
        names += [name, *pool.fallback]
    return list(dict.fromkeys(names))


def build_pools(loop: Loop, config: Config, stack_root: str) -> PoolRegistry:
    """The primary, then ``python3.pools`` in their order, then the legacy secondary."""
    c = config.python3
    primary = build_primary(loop, config, stack_root)
    pools: list[ManagedPool] = [primary]
    for name, section in c.pools.items():
        if section.kind == "dask":  # imported only when a cluster is configured
            from sidecar.routing.dask_pool import DaskPool, DaskPoolSettings

            pools.append(DaskPool(loop, DaskPoolSettings(
                name=name, address=section.address, connect_timeout=section.connect_timeout,
                max_in_flight=section.max_in_flight, tls_ca_file=section.tls_ca_file,
                tls_cert_file=section.tls_cert_file, tls_key_file=section.tls_key_file)))
            continue
        pools.append(SupervisedPool(
            loop, dataclasses.replace(settings.pool_settings(config, name),
                                      stack_root=stack_root),
            section.health, section.scaling, config, paths=section.worker.paths,
            reload=section.worker.reload))
    if "secondary" in chained_names(config) and "secondary" not in c.pools:
        legacy = settings.secondary_pool_settings(primary.pool.settings, c.fallback.secondary)
        pools.append(SupervisedPool(loop, legacy, c.health, c.scaling, config,
                                    paths=[], reload=False))
    return PoolRegistry(pools)
