"""Covers: sidecar.observability.emf.

The CloudWatch record counts members that serve (idle, busy, checking), not spares or the
starting and stopping ones.
"""

from __future__ import annotations

from sidecar.observability.emf import members


def test_only_serving_members_count():
    health = {"pool": {"workers": [
        {"id": 1, "role": "member", "state": "idle"},
        {"id": 2, "role": "member", "state": "busy"},
        {"id": 3, "role": "member", "state": "checking"},
        {"id": 4, "role": "member", "state": "starting"},
        {"id": 5, "role": "member", "state": "stopping"},
        {"id": 6, "role": "spare", "state": "idle"}]}}
    assert [w["id"] for w in members(health)] == [1, 2, 3]
