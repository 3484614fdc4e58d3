"""Covers: sidecar.pool.spawn_policy.

The spawn throttle and capacity decisions (sidecar/pool/spawn_policy.py) with a fake clock."""

from __future__ import annotations

import pytest

from sidecar.pool.spawn_policy import (
    MEMBER,
    SPARE,
    SpawnLimits,
    SpawnPolicy,
    clamp_size,
    missing_roles,
)

from ..clock_double import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def test_back_off_doubles_per_failure_up_to_the_maximum(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(backoff_initial=0.1, backoff_max=1.0), clock)
    delays = [policy.spawn_failed(f"no python {i}") for i in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.wait() == pytest.approx(1.0)
    assert "6 failed attempts" in policy.why_none_can_start()
    assert "no python 5" in policy.why_none_can_start()
    clock.now += 1.0
    assert policy.wait() == 0.0


def test_a_ready_worker_resets_the_failure_count(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(backoff_initial=0.1, backoff_max=30.0), clock)
    policy.spawn_failed("a")
    policy.spawn_failed("b")
    policy.worker_ready()
    clock.now += 5.0
    assert policy.why_none_can_start() == ""
    assert policy.spawn_failed("c") == pytest.approx(0.1)  # from the start again


def test_resource_exhaustion_factor_stretches_the_back_off(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(backoff_initial=0.1, backoff_max=30.0), clock)
    policy.backoff_factor = 4.0
    assert policy.spawn_failed("EMFILE") == pytest.approx(0.4)
    assert policy.spawn_failed("EMFILE") == pytest.approx(0.8)


def test_a_failure_never_moves_the_next_start_earlier(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(max_restarts=1, restart_window=10.0,
                                     backoff_initial=0.1), clock)
    assert policy.restarted()  # the limit: no start for 10 s
    policy.spawn_failed("x")  # 0.1 s of back-off must not shorten that
    assert policy.wait() == pytest.approx(10.0)


def test_restart_limit_holds_starts_until_the_oldest_leaves_the_window(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(max_restarts=3, restart_window=10.0), clock)
    assert not policy.restarted()
    clock.now += 2.0
    assert not policy.restarted()
    clock.now += 2.0
    assert policy.restarted()  # three within 10 s
    assert policy.wait() == pytest.approx(6.0)  # the first (at 100) leaves at 110; now 104
    assert "restart limit of 3 per 10s" in policy.why_none_can_start()
    clock.now += 6.0
    assert policy.wait() == 0.0 and policy.why_none_can_start() == ""
    assert policy.snapshot()["restarts_in_window"] == 3


def test_restarts_outside_the_window_are_forgotten(clock: FakeClock) -> None:
    policy = SpawnPolicy(SpawnLimits(max_restarts=2, restart_window=5.0), clock)
    assert not policy.restarted()
    clock.now += 5.0  # the first one is now exactly a window old: out
    assert not policy.restarted()
    assert policy.snapshot() == {"consecutive_failures": 0, "last_error": "",
                                 "restarts_in_window": 1, "next_spawn_in": 0.0}


def test_capacity_members_first_then_spares_and_sizes_clamped() -> None:
    assert missing_roles(3, 1, 1, 0) == [MEMBER, MEMBER, SPARE]
    assert missing_roles(2, 2, 1, 1) == []
    assert missing_roles(1, 3, 0, 2) == []  # surplus is resize's business, not a spawn's
    assert [clamp_size(n, 1, 4) for n in (0, 1, 3, 9)] == [1, 1, 3, 4]
