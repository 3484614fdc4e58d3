"""The unit tests' fake monotonic clock: time moves only when the test says so (``now``, or
``advance``). One double for every policy and loop test (breaker, score, quarantine, spawn
policy, alerts, the pool's loop)."""

from __future__ import annotations


class FakeClock:
    """Test double for ``time.monotonic``: moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
