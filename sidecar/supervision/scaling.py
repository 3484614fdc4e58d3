"""Adaptive pool sizing from utilization and queue wait, with cool-downs so it never flaps.

Owns: the sizing decision (a pure function, unit-tested with plain numbers) and the timer
that applies it through ``Pool.resize``. Must not touch: which worker goes (the pool removes
the least healthy) or processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sidecar.pool.events import PoolResized
from sidecar.supervision.resources import LoadMeter, LoadSample

log = logging.getLogger("py3sidecar.scaling")


@dataclass(frozen=True)
class ScalingSettings:
    enabled: bool = True
    interval: float = 5.0             # how often load is sampled and a decision made
    scale_up_utilization: float = 0.9  # scale up above this utilization ...
    scale_up_wait: float = 0.05        # ... when calls waited longer than this on average
    scale_down_utilization: float = 0.3
    up_step: int = 2
    down_step: int = 1
    up_cooldown: float = 10.0          # no scale-up within this of the last resize
    down_cooldown: float = 60.0        # no scale-down within this of the last resize


def decide(load: LoadSample, size: int, min_size: int, max_size: int, now: float,
           last_resize: float, settings: ScalingSettings) -> tuple[int, str]:
    """The new size and why (same size and '' when nothing should change)."""
    since = now - last_resize
    if (load.utilization > settings.scale_up_utilization
            and load.mean_wait > settings.scale_up_wait and size < max_size):
        if since < settings.up_cooldown:
            return size, ""
        return min(size + settings.up_step, max_size), (
            f"utilization {load.utilization:.0%} and mean queue wait "
            f"{load.mean_wait * 1000:.0f} ms")
    if load.utilization < settings.scale_down_utilization and size > min_size:
        if since < settings.down_cooldown:
            return size, ""
        return max(size - settings.down_step, min_size), (
            f"utilization {load.utilization:.0%}")
    return size, ""


class AdaptiveSizer:
    def __init__(self, loop: Any, pool: Any, settings: ScalingSettings) -> None:
        self.loop = loop
        self.pool = pool
        self.settings = settings
        self.meter = LoadMeter(pool)
        self.last_resize = loop.clock()
        self.last_decision: dict[str, Any] = {}
        self.timer = None

    def start(self) -> None:
        if self.settings.enabled:
            self.timer = self.loop.call_later(self.settings.interval, self.tick)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def tick(self) -> None:
        self.timer = self.loop.call_later(self.settings.interval, self.tick)
        if self.pool.closing:
            return
        load = self.meter.sample()
        now = self.loop.clock()
        size = self.pool.target_size
        new, reason = decide(load, size, self.pool.settings.min_size,
                             self.pool.settings.max_size, now, self.last_resize, self.settings)
        self.last_decision = {"utilization": load.utilization, "mean_wait": load.mean_wait,
                              "size": size, "new_size": new, "reason": reason}
        if new != size:
            log.info("scaling the pool from %d to %d workers: %s", size, new, reason)
            self.last_resize = now
            self.pool.resize(new)
            self.pool.publish(PoolResized(self.pool.settings.name, size, new, reason))
