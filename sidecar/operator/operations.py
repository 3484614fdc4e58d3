"""The operator's verbs on pools, breakers and the quarantine (the console's actions).

Owns: finding a pool by name (``primary`` or a name of ``python3.pools``), the checks on an
action's arguments (with advice), calling the pools' own graceful verbs, and the one audit
call per action (``audit_action``). Runs in the loop thread only: the HTTP front reaches these
functions through ``sidecar.observability.metrics.ask``. Must not touch: worker processes (the
pool's verbs
``recycle``/``renew_workers``/``resize`` replace them), HTTP or sessions (``sidecar.http.actions``).

    verb                          pool's verb                         answer
    restart_worker(pool, id)      Pool.recycle(worker)                the worker, its pid
    recycle(pool)                 Pool.renew_workers()                how many are renewed
    resize(pool, target)          Pool.resize() within min/max        the new target
    set_breaker(pool, state)      CircuitBreaker.force_open/reset     the breaker's snapshot
    clear_quarantine(fp)          Quarantine.clear()                  what was cleared
"""

from __future__ import annotations

import logging
from typing import Any

from sidecar.pool.events import PoolResized
from sidecar.routing.quarantine import quarantine_op
from sidecar.routing.registry import PRIMARY

log = logging.getLogger("py3sidecar.operator")


class ActionError(Exception):
    """An action refused: ``status`` is the HTTP status to answer with, ``message`` advice."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def audit_action(service: Any, action: str, pool: str | None, outcome: str, peer: str,
                 **details: Any) -> None:
    """One audit line per operator action (``sidecar.observability.audit``: op "operator", the
    action as its command), and an INFO line of the sidecar's log with the details."""
    audit = getattr(service, "audit", None)
    if audit is not None:
        audit.action(action, pool, outcome, peer)
    extra = " ".join(f"{k}={v}" for k, v in sorted(details.items()))
    log.info("operator action %s pool=%s outcome=%s peer=%s %s", action, pool, outcome, peer,
             extra)


def pool_names(service: Any) -> list[str]:
    return service.pools.names()  # the registry's order: the primary first


def local_pool(service: Any, name: str) -> Any:
    """The ``SupervisedPool`` named ``name``; ActionError 404 (or 400 for a Dask pool)."""
    pool = service.pools.get(name)
    if pool is not None and pool.local is not None:
        return pool
    if pool is not None:
        raise ActionError(400, f"pool {name!r} is a Dask cluster: its workers are the "
                          "scheduler's to restart and size; only its breaker is steered here")
    raise ActionError(404, f"no pool named {name!r}; there are: "
                      f"{', '.join(pool_names(service))} (python3.pools)")


def pool_key(name: str, key: str) -> str:
    return f"python3.pool.{key}" if name == PRIMARY else f"python3.pools.{name}.pool.{key}"


def restart_worker(service: Any, pool_name: str, worker_id: Any) -> dict[str, Any]:
    """Gracefully: a spare or a new worker takes over, then this one drains (its call ends)."""
    pool = local_pool(service, pool_name).pool
    if isinstance(worker_id, str) and worker_id.isdigit():
        worker_id = int(worker_id)
    worker = pool.workers.get(worker_id)
    if worker is None or worker.exit is not None or worker.state == "stopping":
        live = ", ".join(str(w.id) for w in pool.workers.values()
                         if w.exit is None and w.state != "stopping")
        raise ActionError(404, f"no running worker {worker_id!r} in pool {pool_name!r}; its "
                          f"workers are: {live or 'none'} (the 'id' of health)")
    pid = worker.pid
    pool.recycle_when_free(worker, "an operator restarted it")
    return {"pool": pool_name, "worker": worker.id, "pid": pid,
            "replaced_by": worker.replaced_by, "state": worker.state}


def recycle(service: Any, pool_name: str) -> dict[str, Any]:
    """Every worker renewed gracefully: calls in flight finish, the next call gets a new one."""
    pool = local_pool(service, pool_name).pool
    count = pool.renew_workers("an operator recycled the pool")
    return {"pool": pool_name, "renewing": count}


def resize(service: Any, pool_name: str, target: Any) -> dict[str, Any]:
    supervised = local_pool(service, pool_name)
    pool = supervised.pool
    low, high = pool.settings.min_size, pool.settings.max_size
    if not isinstance(target, int) or isinstance(target, bool) or not low <= target <= high:
        raise ActionError(400, f"'target' must be a whole number from {low} "
                          f"({pool_key(pool_name, 'min-size')}) to {high} "
                          f"({pool_key(pool_name, 'max-size')}), got {target!r}")
    old = pool.target_size
    pool.resize(target)
    # Adaptive sizing waits its cooldown before it changes the operator's size again.
    supervised.sizer.last_resize = service.loop.clock()
    if old != target:
        pool.publish(PoolResized(pool.settings.name, old, target, "an operator set it"))
    return {"pool": pool_name, "old": old, "target": pool.target_size,
            "min": low, "max": high}


def set_breaker(service: Any, pool_name: str, state: Any) -> dict[str, Any]:
    breakers = service.chain.breakers()
    if pool_name not in breakers:
        if pool_name not in pool_names(service):
            raise ActionError(404, f"no pool named {pool_name!r}; there are: "
                              f"{', '.join(pool_names(service))} (python3.pools)")
        raise ActionError(400, f"pool {pool_name!r} has no circuit breaker (enable "
                          "python3.circuit-breaker); breakers: "
                          f"{', '.join(breakers) or 'none'}")
    breaker = breakers[pool_name]
    if state == "open":
        breaker.force_open("forced open by an operator")
    elif state == "closed":
        breaker.reset("closed by an operator")
    else:
        raise ActionError(400, f"'state' must be \"open\" or \"closed\", got {state!r}")
    return {"pool": pool_name, "breaker": breaker.snapshot()}


def clear_quarantine(service: Any, fingerprint: Any = None) -> dict[str, Any]:
    from bridge.protocol import SidecarError

    try:
        return quarantine_op(service.quarantine, {"action": "clear",
                                                  "fingerprint": fingerprint})
    except SidecarError as exc:
        raise ActionError(400 if "no quarantined" not in exc.message else 404,
                          exc.message) from None
