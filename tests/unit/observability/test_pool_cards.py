"""Covers: sidecar.observability.pool_cards.

The pool cards count members and spares apart."""

from __future__ import annotations

from sidecar.observability.pool_cards import member_counts


def test_members_and_spares_are_counted_apart() -> None:
    def worker(role, state="idle", status="HEALTHY"):
        return {"role": role, "state": state, "status": status}
    counts = member_counts([worker("member"), worker("member"), worker("spare"),
                            worker("member", "stopping")])
    assert counts == {"members": 2, "healthy": 2, "spares": 1, "healthy_spares": 1}
