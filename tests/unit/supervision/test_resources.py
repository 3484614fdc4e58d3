"""Covers: sidecar.supervision.resources.

The load meter between two samples, on a plain pool double: utilization of the live workers'
time and the mean queue wait, the calls still queued included.
"""

from __future__ import annotations

from types import SimpleNamespace

from sidecar.supervision.resources import LoadMeter


def test_utilization_and_wait_between_samples():
    now = [100.0]
    pool = SimpleNamespace(clock=lambda: now[0], workers={}, busy_seconds_total=0.0,
                           queue_wait_total=0.0, queue_wait_count=0, queue=[],
                           live_count=lambda: 2)
    meter = LoadMeter(pool)
    now[0] = 110.0
    pool.busy_seconds_total = 10.0    # one of two workers busy the whole window
    pool.queue_wait_total, pool.queue_wait_count = 2.0, 4
    sample = meter.sample()
    assert abs(sample.utilization - 0.5) < 1e-9
    assert abs(sample.mean_wait - 0.5) < 1e-9 and sample.calls == 4
