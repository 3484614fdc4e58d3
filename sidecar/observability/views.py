"""The documents the HTTP endpoints answer with, built from the ``health`` op's snapshot.

Owns: readiness (``/readyz``), the ``application/health+json`` document (``/health``,
draft-inadarei-api-health-check) and the dashboard's JSON (``/api/dashboard``). Must not touch:
sockets or HTTP (``sidecar.http.handler``), the pool's state (``gather_*`` run in the loop thread
and only read; the ``*_document`` functions are pure and run in the HTTP thread).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sidecar.observability.collector import slot_order
from sidecar.observability.pool_cards import pool_cards
from sidecar.pool.interface import PoolRegistry
from sidecar.pool.states import READY_STATES

# The pool's status (sidecar.supervision.health) -> the draft's pass/warn/fail.
HEALTH_STATUS = {"HEALTHY": "pass", "DEGRADED": "warn"}
BREAKER_STATUS = {"closed": "pass", "disabled": "pass", "half_open": "warn"}
LOOP_LAG_WARN = 0.5  # seconds: the loop is late enough to delay calls noticeably


ALERT_LEVELS = {"INFO": 1, "WARNING": 2, "CRITICAL": 3}


def alert_state(records: Any) -> dict[str, Any]:
    """From ``Service.recent_alerts`` (oldest first; the alert manager appends
    ``{"at", "level", "title", "key", "resolved", ...}``): the conditions still open, by their
    ``key`` (else title), and the worst level among them ("OK" when none)."""
    latest: dict[Any, dict[str, Any]] = {}
    for record in records:
        latest[record.get("key") or record.get("title")] = record
    active = [r for r in latest.values() if not r.get("resolved")]
    level = max((str(r.get("level")) for r in active), key=lambda v: ALERT_LEVELS.get(v, 0),
                default="OK")
    last = records[-1] if records else None
    return {"level": level, "active": len(active),
            "last": None if last is None else {k: last.get(k) for k in
                                               ("at", "level", "title", "resolved")}}


def gather_readiness(state: str, pools: PoolRegistry) -> tuple[bool, str]:
    """Loop thread. Ready = running with at least one ready worker in every local pool (a call
    may name any of them); a Dask cluster's state is told, not required (its breaker and
    fallback answer for it)."""
    if state != "running":
        return False, f"not ready: the sidecar is {state}"
    parts, missing = [], []
    for pool in pools:
        ready, reason = pool.readiness()
        parts.append(reason if len(pools) == 1 else f"{pool.name} ({pool.kind}): {reason}")
        if not ready and pool.kind == "local":
            missing.append(reason if len(pools) == 1 else f"pool {pool.name}: {reason}")
    if missing:
        return False, f"not ready: {'; '.join(missing)}"
    return True, f"ready: {'; '.join(parts)}"


def gather_dashboard(health: dict[str, Any], metrics: Any,
                     recent_alerts: Any) -> dict[str, Any]:
    """Loop thread: everything the dashboard shows, copied (``health``: the ``health`` op's
    snapshot, every pool of the registry in it)."""
    return {"health": health, "minutes": metrics.minutes_view(),
            "alerts": list(recent_alerts), "loop_lag": metrics.loop_lag}


def health_document(health: dict[str, Any], loop_lag: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, document): 503 when the status is fail."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    checks: dict[str, list[dict[str, Any]]] = {}

    def check(key: str, value: Any, unit: str | None, status: str, component: str,
              output: str = "") -> None:
        entry: dict[str, Any] = {"componentId": component, "componentType": "component",
                                 "observedValue": value, "status": status, "time": now}
        if unit:
            entry["observedUnit"] = unit
        if output:
            entry["output"] = output
        checks.setdefault(key, []).append(entry)

    pool = health["pool"]
    name, size = pool["name"], pool["size"]
    ready, target = size["ready"], size["target"]
    check("pool:readyWorkers", ready, "workers",
          "pass" if ready >= target else ("warn" if ready else "fail"), name,
          "" if ready >= target else f"{ready} of {target} workers ready")
    queue = pool["queue"]
    check("pool:queueLength", queue["length"], "calls",
          "warn" if queue["length"] >= 0.8 * queue["capacity"] else "pass", name)
    for slot, worker in enumerate(slot_order(pool["workers"])):
        check("worker:healthScore", worker["score"], "score",
              "pass" if worker["status"] in ("HEALTHY", "UNKNOWN") else "warn",
              f"{name}/{slot}", worker["status_detail"] or "")
    for breaker_name, breaker in health["breakers"].items():
        check("circuitBreaker:state", breaker["state"], None,
              BREAKER_STATUS.get(breaker["state"], "fail"), breaker_name)
    escalated = health["recovery"]["escalated"]
    check("recovery:escalated", bool(escalated), None, "fail" if escalated else "pass",
          "recovery")
    check("eventLoop:lag", round(loop_lag, 6), "s", "warn" if loop_lag > LOOP_LAG_WARN else "pass",
          "loop")
    status = HEALTH_STATUS.get(health["status"], "fail")
    sidecar = health["sidecar"]
    doc: dict[str, Any] = {"status": status, "version": "1", "releaseId": sidecar["version"],
                           "serviceId": "py3sidecar", "description": "CPython 3 sidecar for "
                           "Ignition: worker pool health", "checks": checks}
    if status != "pass":
        doc["output"] = health["reason"]
    return (503 if status == "fail" else 200), doc


def dashboard_document(gathered: dict[str, Any]) -> dict[str, Any]:
    health = gathered["health"]
    pool = health["pool"]
    members = [w for w in pool["workers"] if w["role"] == "member" and w["state"] != "stopping"]
    workers = [{"slot": slot, "id": w["id"], "pid": w["pid"], "role": w["role"],
                "state": w["state"], "status": w["status"], "score": w["score"],
                "calls": w["calls"], "rss": w["rss"], "last_used_ago": w["last_used_ago"]}
               for slot, w in enumerate(slot_order(pool["workers"]))]
    scores = [w["score"] for w in members]
    failures = [{"seconds_ago": f["seconds_ago"], "type": str(f["type"]), "worker": f["worker"],
                 "pid": f["pid"], "detail": f["detail"], "action": f["action"]}
                for f in health["recovery"]["recent_failures"]]
    fallback = health["fallback"]
    return {
        "generated_at": time.time(),
        "status": health["status"], "reason": health["reason"],
        "score": round(sum(scores) / len(scores), 1) if scores else 0,
        "sidecar": health["sidecar"],
        "pool": {"name": pool["name"], "size": pool["size"]["target"],
                 "healthy": sum(1 for w in members
                                if w["status"] == "HEALTHY" and w["state"] in READY_STATES),
                 "available": sum(1 for w in members if w["state"] == "idle"),
                 "queued": pool["queue"]["length"], "capacity": pool["queue"]["capacity"]},
        "workers": workers,
        # a card per pool, the primary first (sidecar/observability/pool_cards.py)
        "pools": pool_cards(health),
        "minutes": gathered["minutes"],
        "failures": failures[::-1],  # newest first
        "alerts": gathered["alerts"][::-1],
        "breakers": {n: {"state": b["state"]} for n, b in health["breakers"].items()},
        "fallback": {k: fallback[k] for k in ("strategies", "served", "fell_through",
                                              "exhausted")},
        "loop_lag": gathered["loop_lag"],
    }
