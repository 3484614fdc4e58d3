"""The pool's snapshot: what the ``health`` op, the metrics and the dashboard read of a pool.

Owns: the snapshot document's shape. Must not touch: the pool's state (it only reads, in the
loop thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.pool.worker_handle import IDLE, STATES

if TYPE_CHECKING:
    from sidecar.pool.local import Pool


def pool_snapshot(pool: Pool) -> dict[str, Any]:
    now = pool.clock()
    states = [w.state for w in pool.workers.values()]
    settings = pool.settings
    return {
        "name": settings.name,
        "size": {"target": pool.target_size, "min": settings.min_size,
                 "max": settings.max_size, "live": pool.live_count(),
                 "ready": pool.ready_members(), "spares_wanted": settings.spares,
                 "spares_ready": sum(1 for w in pool.spares() if w.state == IDLE)},
        "workers_by_state": {s: states.count(s) for s in STATES},
        "queue": {"length": len(pool.queue), "capacity": settings.queue_size},
        "counters": dict(pool.counters),
        "fd_output": pool.fd_output.snapshot(),
        "errors": dict(pool.errors_by_kind),
        "spawn": pool.spawning.snapshot(),
        "template": (pool.spec.template.snapshot() if pool.spec.template is not None
                     else {"state": "off"}),
        "workers": [w.report(now) for w in pool.workers.values()],
    }
