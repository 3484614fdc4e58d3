"""The dashboard's card per pool: every local pool's workers and sizes, every Dask cluster.

Owns: turning ``health`` (``pool`` and ``pools``) and the breakers into one list of cards, the
primary first, each with what its actions need (the pool's name, its bounds, its breaker). Pure:
runs in the HTTP thread on a copied snapshot. Must not touch: the pools, HTTP.
"""

from __future__ import annotations

from typing import Any

from sidecar.observability.collector import slot_order
from sidecar.pool.states import READY_STATES


def worker_rows(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"slot": slot, "id": w["id"], "pid": w["pid"], "role": w["role"],
             "state": w["state"], "status": w["status"], "score": w["score"],
             "calls": w["calls"], "rss": w["rss"], "last_used_ago": w["last_used_ago"]}
            for slot, w in enumerate(slot_order(workers))]


def member_counts(workers: list[dict[str, Any]]) -> dict[str, int]:
    """Members and spares counted apart (a ready spare is not a healthy member)."""
    live = [w for w in workers if w["state"] != "stopping"]
    members = [w for w in live if w["role"] == "member"]
    spares = [w for w in live if w["role"] == "spare"]

    def healthy(ws: list[dict[str, Any]]) -> int:
        return sum(1 for w in ws if w["status"] == "HEALTHY" and w["state"] in READY_STATES)
    return {"members": len(members), "healthy": healthy(members), "spares": len(spares),
            "healthy_spares": healthy(spares)}


def local_card(name: str, view: dict[str, Any], breaker: dict[str, Any] | None) -> dict[str, Any]:
    size = view["size"]
    return {"name": name, "kind": "local", "status": view.get("status"),
            "reason": view.get("status_reason"),
            "size": {"target": size["target"], "min": size["min"], "max": size["max"],
                     "spares": size["spares_wanted"]},
            **member_counts(view["workers"]),
            "queued": view["queue"]["length"],
            "breaker": None if breaker is None else breaker.get("state"),
            "workers": worker_rows(view["workers"])}


def dask_card(name: str, view: dict[str, Any], breaker: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": name, "kind": "dask", "status": view.get("status"),
            "reason": view.get("status_reason"), "address": view.get("address"),
            "connected": view.get("connected"), "dask_workers": view.get("workers"),
            "in_flight": view.get("in_flight"),
            "breaker": None if breaker is None else breaker.get("state")}


def pool_cards(health: dict[str, Any]) -> list[dict[str, Any]]:
    breakers = health.get("breakers") or {}
    cards = [local_card("primary", health["pool"], breakers.get("primary"))]
    for name, view in (health.get("pools") or {}).items():
        make = dask_card if view.get("kind") == "dask" else local_card
        cards.append(make(name, view, breakers.get(name)))
    return cards
