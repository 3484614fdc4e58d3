"""Covers: sidecar.observability.collector.

Slot order of the workers the metrics label: members before spares, each by age, the stopping
ones left out, so slot numbers stay bounded by the pool's size.
"""

from __future__ import annotations

from sidecar.observability.collector import slot_order


def test_members_then_spares_by_age_without_the_stopping():
    workers = [{"id": 7, "role": "spare", "state": "idle"},
               {"id": 5, "role": "member", "state": "busy"},
               {"id": 2, "role": "member", "state": "stopping"},
               {"id": 3, "role": "member", "state": "idle"},
               {"id": 6, "role": "spare", "state": "starting"}]
    assert [w["id"] for w in slot_order(workers)] == [3, 5, 6, 7]
