"""Covers: sidecar.supervision.health.

Pure policies with plain objects: health checks, the aggregate rule, sizing decisions,
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
