"""Pure policies with plain objects: health checks, the aggregate rule, sizing decisions,
stack classification. No processes, no sleeping."""

from types import SimpleNamespace

import pytest

from sidecar.supervision.health import (
    DEAD,
    DEGRADED,
    HEALTHY,
    MEMORY_HIGH,
    UNHEALTHY,
    UNKNOWN,
    UNRESPONSIVE,
    CompositeHealthCheck,
    HealthSettings,
    pool_status,
)
from sidecar.supervision.recovery import FailureType, classify_stack
from sidecar.supervision.resources import LoadSample
from sidecar.supervision.scaling import ScalingSettings, decide

MiB = 1 << 20


def worker(**kw):
    base = dict(exit=None, ping_failed=False, hung_for=0.0, ready_at=1.0, bench_baseline=0.001,
                bench_last=0.001, rss=50 * MiB, rss_baseline=40 * MiB)
    base.update(kw)
    return SimpleNamespace(**base)


SETTINGS = HealthSettings(ping_timeout=1, hang_after=30, performance_factor=5,
                          memory_limit=500 * MiB, memory_growth_limit=200 * MiB)


@pytest.mark.parametrize("observed, status, action", [
    ({}, HEALTHY, False),
    ({"ready_at": 0.0}, UNKNOWN, False),
    ({"exit": {"text": "signal 9"}}, DEAD, True),
    ({"ping_failed": True}, UNRESPONSIVE, True),
    ({"hung_for": 31.0}, UNRESPONSIVE, True),
    ({"hung_for": 29.0}, HEALTHY, False),
    ({"bench_last": 0.006}, DEGRADED, False),
    ({"bench_last": 0.004}, HEALTHY, False),
    ({"rss": 600 * MiB}, MEMORY_HIGH, True),
    ({"rss": 300 * MiB}, MEMORY_HIGH, True),          # grew 260 MiB over its baseline
    ({"rss": 300 * MiB, "rss_baseline": 0}, HEALTHY, False),  # no baseline yet
    ({"rss": 600 * MiB, "ping_failed": True}, UNRESPONSIVE, True),  # the worst wins
])
def test_composite_returns_the_worst_status(observed, status, action):
    result = CompositeHealthCheck().check(worker(**observed), SETTINGS)
    assert (result.status, result.requires_action) == (status, action)


@pytest.mark.parametrize("args, status", [
    ((0, 2, 1, 1, [], False, False, False), UNHEALTHY),
    ((2, 2, 1, 1, [HEALTHY, HEALTHY], True, False, False), UNHEALTHY),
    ((2, 2, 1, 1, [HEALTHY, HEALTHY], False, True, False), UNHEALTHY),
    ((1, 2, 1, 1, [HEALTHY], False, False, False), DEGRADED),
    ((2, 2, 0, 1, [HEALTHY, HEALTHY], False, False, False), DEGRADED),
    ((2, 2, 1, 1, [HEALTHY, DEGRADED], False, False, False), DEGRADED),
    ((2, 2, 1, 1, [HEALTHY, HEALTHY], False, False, True), DEGRADED),
    ((2, 2, 1, 1, [HEALTHY, HEALTHY], False, False, False), HEALTHY),
])
def test_pool_status_rule(args, status):
    assert pool_status(*args)[0] == status


S = ScalingSettings(scale_up_utilization=0.9, scale_up_wait=0.05, scale_down_utilization=0.3,
                    up_cooldown=10, down_cooldown=60)


@pytest.mark.parametrize("util, wait, size, since, expected", [
    (0.95, 0.2, 2, 100, 4),     # busy and waiting: +2
    (0.95, 0.2, 5, 100, 6),     # capped at max 6
    (0.95, 0.01, 2, 100, 2),    # busy but nobody waits: stay
    (0.95, 0.2, 2, 5, 2),       # within the up cool-down
    (0.1, 0.0, 4, 100, 3),      # idle: -1
    (0.1, 0.0, 4, 30, 4),       # within the down cool-down
    (0.1, 0.0, 1, 100, 1),      # at min
    (0.5, 0.0, 3, 100, 3),      # in between: stay
])
def test_scaling_decision(util, wait, size, since, expected):
    new, reason = decide(LoadSample(util, wait, 10), size, 1, 6, 1000.0, 1000.0 - since, S)
    assert new == expected
    assert bool(reason) == (new != size)


def test_scaling_never_flaps_between_up_and_down():
    sizes, last, size, now = [], 0.0, 2, 0.0
    for util, wait in [(0.95, 0.2), (0.1, 0.0)] * 10:  # alternating load every 5 s
        now += 5
        new, _ = decide(LoadSample(util, wait, 10), size, 1, 8, now, last, S)
        if new != size:
            last, size = now, new
        sizes.append(size)
    changes = sum(1 for a, b in zip(sizes, sizes[1:]) if a != b)
    assert changes <= 4, sizes


DEADLOCK_STACK = """Current thread 0x00007f (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait
  File "/usr/lib/python3.11/threading.py", line 622 in wait
  File "<python3.execute #1>", line 2 in <module>
"""
HANG_STACK = """Current thread 0x00007f (most recent call first):
  File "<python3.execute #1>", line 2 in <module>
"""


def test_stack_classification():
    assert classify_stack(DEADLOCK_STACK) is FailureType.DEADLOCK
    assert classify_stack(HANG_STACK) is FailureType.HANG
    assert classify_stack("") is FailureType.HANG
