"""When the pool may start a worker, and how many of which role it is missing: pure policy.

Like ``bridge.breaker`` and ``sidecar.supervision.score``: no processes, no loop, an injected clock,
so
``tests/unit/test_spawn_policy.py`` drives it with a fake one.

- Back-off: after ``n`` spawn failures in a row the next start waits
  ``min(backoff_initial * backoff_factor * 2**(n-1), backoff_max)`` (recovery raises
  ``backoff_factor`` on resource exhaustion); a worker getting ready resets the count.
- Restart limit: at most ``max_restarts`` unexpected exits per ``restart_window`` seconds; at
  the limit the next start waits until the oldest of them leaves the window.
- Capacity: the members missing to reach the target, then the spares missing.

Owns: spawn failure and restart accounting, the earliest next start, the texts that explain a
wait to callers, the clamp of a requested size and the list of missing roles. Must not touch:
processes (``sidecar.process.spawn``), the loop and its timers, calls, logging or events (the pool
logs and publishes what these decisions return).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MEMBER, SPARE = "member", "spare"


@dataclass(frozen=True)
class SpawnLimits:
    """The knobs (python3.pool.*, already validated)."""

    max_restarts: int = 30
    restart_window: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0


class SpawnPolicy:
    def __init__(self, limits: SpawnLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self.restarts: deque[float] = deque()   # times of unexpected exits in the window
        self.failures = 0                       # spawn failures in a row
        self.last_error = ""
        self.next_at = 0.0                      # no start before this time
        self.backoff_factor = 1.0               # raised by recovery on resource exhaustion

    # ------------------------------------------------------------ what happened
    def spawn_failed(self, message: str) -> float:
        """A start failed; returns the back-off delay before the next try."""
        self.failures += 1
        self.last_error = message
        delay = min(self.limits.backoff_initial * self.backoff_factor
                    * 2 ** (self.failures - 1), self.limits.backoff_max)
        self.next_at = max(self.next_at, self.clock() + delay)
        return delay

    def worker_ready(self) -> None:
        self.failures = 0

    def restarted(self) -> bool:
        """A worker exited unexpectedly; True when this reaches the restart limit."""
        now = self.clock()
        window = self.limits.restart_window
        self.restarts.append(now)
        while self.restarts and self.restarts[0] <= now - window:
            self.restarts.popleft()
        if len(self.restarts) < self.limits.max_restarts:
            return False
        self.next_at = max(self.next_at, self.restarts[0] + window)
        return True

    # ------------------------------------------------------------ decisions
    def wait(self) -> float:
        """Seconds until a start is allowed (0: now)."""
        return max(0.0, self.next_at - self.clock())

    def why_none_can_start(self) -> str:
        """Why no worker is coming soon ("" if one may start now); for callers' errors."""
        if self.failures:
            return (f"no Python worker could be started ({self.failures} failed attempts; "
                    f"last: {self.last_error}); next attempt in {self.wait():.1f}s")
        if self.next_at > self.clock():
            return (f"workers keep dying: the restart limit of {self.limits.max_restarts} per "
                    f"{self.limits.restart_window:g}s is reached; next start in "
                    f"{self.next_at - self.clock():.1f}s")
        return ""

    def snapshot(self) -> dict[str, float | int | str]:
        return {"consecutive_failures": self.failures, "last_error": self.last_error,
                "restarts_in_window": len(self.restarts), "next_spawn_in": self.wait()}


def clamp_size(size: int, min_size: int, max_size: int) -> int:
    return max(min_size, min(max_size, size))


def missing_roles(target: int, live_members: int, spares_wanted: int, spares: int) -> list[str]:
    """The roles to start, members first (a member is a serving place, a spare only a hedge)."""
    return [MEMBER] * (target - live_members) + [SPARE] * (spares_wanted - spares)
