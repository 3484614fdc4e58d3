"""The pool interface and the one registry of pools the sidecar runs.

Owns: ``ManagedPool``, what every pool the sidecar runs offers the rest of it (a local pool with
its supervision, ``sidecar.routing.registry.SupervisedPool``; a Dask cluster,
``sidecar.routing.dask_pool.DaskPool``), and ``PoolRegistry``, those pools by name in their
configured order, the primary first and named ``primary`` like the others: the lifecycle verbs
run once per pool through it, and every view (diagnostics, the dashboard, readiness, health,
CloudWatch) reads every pool through it. Must not touch: building pools from the config
(``sidecar.routing.registry``), routing a call (``sidecar.routing.chain``: it gets
``executors()`` once, at start-up, so the hot path is the pool's own ``submit``), worker
processes (``sidecar.pool.local``).

    registry.start()            every pool's start, in order
    registry.start_supervision()  then every pool's watchdog and sizing
    registry.begin_shutdown()   every pool stops taking calls
    registry.busy()             any call still in flight anywhere
    registry.terminate()        every pool stopped (workers, threads, clients)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from sidecar.pool.local import Pool

PRIMARY = "primary"


@runtime_checkable
class ManagedPool(Protocol):
    """A pool as the service, the chain and the views see it (loop thread only)."""

    name: str
    kind: str           # "local" (worker processes here) or "dask" (a cluster's workers)
    local: Pool | None  # the local Pool underneath (probes, stacks, operator verbs); None: Dask

    def start(self) -> None: ...
    def start_supervision(self) -> None: ...
    def begin_shutdown(self) -> None: ...
    def busy(self) -> bool: ...
    def terminate(self) -> None: ...
    def submit(self, call: Any) -> None: ...

    def executor(self) -> Any:
        """What the chain submits a call to (the local ``Pool`` itself: no extra hop)."""
        ...

    def view(self, breaker_open: bool) -> dict[str, Any]:
        """``health``'s view of the pool: its snapshot with ``status`` and ``status_reason``."""
        ...

    def worker_table(self) -> list[dict[str, Any]]:
        """One row per worker process (``diag workers``, the dashboard); [] for a cluster."""
        ...

    def memory(self, now: float) -> list[dict[str, Any]]:
        """One row per live worker: ``worker``, ``pid``, ``state``, ``rss``, ``rss_baseline``,
        ``growth`` (``diag memory``); [] for a cluster (its memory is in ``view``)."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """(can take a call now, why) for ``/readyz``."""
        ...


class PoolRegistry:
    """Every pool by name, in order, the primary first (``PRIMARY``)."""

    def __init__(self, pools: list[ManagedPool]) -> None:
        if not pools or pools[0].name != PRIMARY:
            raise ValueError("the registry's first pool must be the primary")
        self.pools: dict[str, ManagedPool] = {}
        for pool in pools:
            if pool.name in self.pools:
                raise ValueError(f"two pools named {pool.name!r}")
            self.pools[pool.name] = pool

    @property
    def primary(self) -> ManagedPool:
        return self.pools[PRIMARY]

    def __iter__(self) -> Iterator[ManagedPool]:
        return iter(list(self.pools.values()))

    def __len__(self) -> int:
        return len(self.pools)

    def __contains__(self, name: object) -> bool:
        return name in self.pools

    def __getitem__(self, name: str) -> ManagedPool:
        return self.pools[name]

    def get(self, name: str) -> ManagedPool | None:
        return self.pools.get(name)

    def names(self) -> list[str]:
        return list(self.pools)

    def of_kind(self, kind: str) -> list[ManagedPool]:
        return [p for p in self.pools.values() if p.kind == kind]

    def local_pools(self) -> list[tuple[str, Pool]]:
        """(name, local Pool) of every pool with worker processes here, in order."""
        return [(p.name, p.local) for p in self.pools.values() if p.local is not None]

    def executors(self) -> dict[str, Any]:
        """Name -> what a call is ``submit``-ted to (the chain's strategies, once)."""
        return {name: pool.executor() for name, pool in self.pools.items()}

    # ------------------------------------------------------------ the lifecycle, once each
    def start(self) -> None:
        for pool in self:
            pool.start()

    def start_supervision(self) -> None:
        for pool in self:
            pool.start_supervision()

    def begin_shutdown(self) -> None:
        for pool in self:
            pool.begin_shutdown()

    def busy(self) -> bool:
        return any(pool.busy() for pool in self)

    def terminate(self) -> None:
        for pool in self:
            pool.terminate()

    # ------------------------------------------------------------ views
    def views(self, open_breakers: set[str]) -> dict[str, dict[str, Any]]:
        """Every pool's health view, by name, in order (the primary first)."""
        return {name: pool.view(name in open_breakers) for name, pool in self.pools.items()}

    def worker_tables(self) -> dict[str, list[dict[str, Any]]]:
        return {name: pool.worker_table() for name, pool in self.pools.items()}

    def readiness(self) -> dict[str, tuple[bool, str]]:
        return {name: pool.readiness() for name, pool in self.pools.items()}
