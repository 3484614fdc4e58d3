"""Covers: sidecar.pool.states, sidecar.pool.worker_handle, sidecar.observability.views,
sidecar.observability.pool_cards.

The ready states in one place: idle, busy and checking are ready, starting and stopping are
not; snapshots' plain strings test the same; the views and the cards read this very set.
"""

from __future__ import annotations

from sidecar.observability import pool_cards, views
from sidecar.pool import states, worker_handle


def test_ready_means_serving_free_or_probed():
    assert states.READY_STATES == {"idle", "busy", "checking"}
    assert states.STARTING not in states.READY_STATES
    assert "stopping" not in states.READY_STATES
    assert set(states.STATES) - states.READY_STATES == {"starting", "stopping"}


def test_every_reader_uses_the_one_set():
    assert views.READY_STATES is states.READY_STATES
    assert pool_cards.READY_STATES is states.READY_STATES
    assert worker_handle.READY_STATES is states.READY_STATES
    assert worker_handle.WorkerState is states.WorkerState
