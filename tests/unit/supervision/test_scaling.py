"""Covers: sidecar.supervision.scaling, sidecar.supervision.resources.

Sizing decisions as a pure policy on plain load samples: up, down, hold, and no flapping."""

import pytest

from sidecar.supervision.resources import LoadSample
from sidecar.supervision.scaling import ScalingSettings, decide

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
