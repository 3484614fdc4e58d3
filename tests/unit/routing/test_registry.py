"""Covers: sidecar.routing.registry, sidecar.config.model, sidecar.pool.local,
sidecar.config.settings.

The service builds its supervision from the config it was given (no hidden constants).

Uses a real Pool that is never started (no processes): only the wiring is under test.
"""

from __future__ import annotations

import pytest

from sidecar.config.model import load
from sidecar.loop import Loop
from sidecar.pool.local import Pool, PoolSettings
from sidecar.routing.registry import supervision


@pytest.fixture
def loop_and_pool(tmp_path):
    loop = Loop()
    pool = Pool(loop, PoolSettings(stack_root=str(tmp_path)))
    yield loop, pool
    pool.terminate(0.1)
    loop.close()


def test_overloaded_uses_the_configured_scale_up_thresholds(loop_and_pool) -> None:
    loop, pool = loop_and_pool
    config = load(text="python3:\n  scaling:\n    scale-up-utilization: 0.6\n"
                  "    scale-up-wait: 20ms\n")
    resources, _, watchdog, sizer = supervision(
        loop, pool, config.python3.health, config.python3.scaling, config)
    assert (resources.overload_utilization, resources.overload_wait) == (0.6, 0.02)
    assert (sizer.settings.scale_up_utilization, sizer.settings.scale_up_wait) == (0.6, 0.02)


def test_health_and_recovery_sections_reach_their_components(loop_and_pool) -> None:
    loop, pool = loop_and_pool
    config = load(text="python3:\n  health:\n    hang-after: 90s\n    quick-check-interval: 2s\n"
                  "    memory-growth-limit: 1GiB\n  recovery:\n    escalation-timeout: 5m\n")
    _, recovery, watchdog, _ = supervision(
        loop, pool, config.python3.health, config.python3.scaling, config)
    assert (watchdog.health.hang_after, watchdog.health.memory_growth_limit) == (90.0, 1 << 30)
    assert watchdog.settings.quick_interval == 2.0
    assert recovery.settings.escalation_timeout == 300.0


def test_secondary_and_direct_pools_take_their_sections_over_the_primary() -> None:
    from sidecar.config.settings import direct_pool_settings, pool_settings, secondary_pool_settings

    config = load(text="python3:\n  worker:\n    python: /usr/bin/python3 -X utf8\n"
                  "    env: {A: '1', B: '1'}\n  fallback:\n    secondary:\n"
                  "      python: /opt/venv/bin/python\n      env: {B: '2'}\n      max-size: 3\n"
                  "    direct:\n      python: ''\n")
    primary = pool_settings(config)
    secondary = secondary_pool_settings(primary, config.python3.fallback.secondary)
    assert (secondary.name, secondary.python, secondary.env) == (
        "secondary", ["/opt/venv/bin/python"], {"A": "1", "B": "2"})
    assert (secondary.initial_size, secondary.min_size, secondary.max_size,
            secondary.queue_size) == (1, 0, 3, 16)
    assert secondary.call_timeout == primary.call_timeout  # limits are shared
    direct = direct_pool_settings(primary, config.python3.fallback.direct)
    assert (direct.name, direct.python, direct.env) == (
        "primary", ["/usr/bin/python3", "-X", "utf8"], {"A": "1", "B": "1"})
