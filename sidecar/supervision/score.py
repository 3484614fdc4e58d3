"""Per-worker health score, 0-100, and the short history behind it (spec section 1B).

Owns: the score arithmetic (reward per success, penalty per failure kind), the ring of recent
events, and the metrics derived from it (success rate, mean execution time, last failure).
Must not touch: processes, pings, the pool, or deciding *how* a worker is replaced; it only
answers ``should_replace()``. Time comes from an injected monotonic clock.

Unlike the spec (which counts every exception), errors that are not the worker's fault are not
recorded at all: ``user`` (the user's code raised) and the kinds that never reach a worker
(``bad_request``, ``unauthorized``, ``overloaded``, ``circuit_open``). They change neither the
score nor the success rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bridge.protocol import (
    BAD_REQUEST,
    CIRCUIT_OPEN,
    CRASHED,
    OVERLOADED,
    TIMEOUT,
    UNAUTHORIZED,
    USER,
)

Clock = Callable[[], float]

SUCCESS = "success"
UNRESPONSIVE = "unresponsive"  # no ping answer within its deadline

NOT_THE_WORKERS_FAULT = frozenset({USER, BAD_REQUEST, UNAUTHORIZED, OVERLOADED, CIRCUIT_OPEN})


@dataclass(frozen=True)
class ScoreConfig:
    """Score knobs; mirrors ``python3.health.score`` in the YAML config."""

    max_score: int = 100
    """Score of a fresh worker, and the cap successes cannot raise it above."""
    success_reward: int = 1
    """Points added by each successful call."""
    timeout_penalty: int = 20
    """Points lost on a ``timeout`` or an ``unresponsive`` ping."""
    crashed_penalty: int = 50
    """Points lost when the worker process died during a call (whatever killed it: the OOM
    killer, a broken channel; no separate ``oom`` or ``io`` kind reaches the score)."""
    other_penalty: int = 10
    """Points lost on any other infrastructure failure (e.g. ``internal``)."""
    replace_threshold: int = 30
    """A worker whose score falls below this should be replaced."""
    history_size: int = 100
    """Events kept for success rate and mean execution time."""

    def __post_init__(self) -> None:
        for name in ("max_score", "history_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"health score {name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("success_reward", "timeout_penalty", "crashed_penalty", "other_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"health score {name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.replace_threshold <= self.max_score:
            raise ValueError(f"health score replace_threshold must be within 0..{self.max_score},"
                             f" got {self.replace_threshold!r}")

    def penalty_for(self, kind: str) -> int | None:
        """Points a failure of this kind costs; None when it is not the worker's fault."""
        if kind in NOT_THE_WORKERS_FAULT:
            return None
        if kind in (TIMEOUT, UNRESPONSIVE):
            return self.timeout_penalty
        if kind == CRASHED:
            return self.crashed_penalty
        return self.other_penalty


class ScoreEvent(NamedTuple):
    """One recorded call: ``kind`` is ``success`` or a failure kind; ``at`` is a clock reading.
    (Immutable, as a frozen dataclass was, and built at every call without four
    ``object.__setattr__``: docs/performance.md.)"""

    kind: str
    at: float
    duration_s: float | None
    score_after: int


class HealthScore:
    """One worker's score; thread-safe (pool threads record, the watchdog reads)."""

    def __init__(self, config: ScoreConfig | None = None, *,
                 clock: Clock = time.monotonic) -> None:
        self.config = config or ScoreConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._score = self.config.max_score
        self._history: deque[ScoreEvent] = deque(maxlen=self.config.history_size)
        self._successes_total = 0
        self._failures_total = 0
        self._last_failure: ScoreEvent | None = None

    def record(self, kind: str | None, duration_s: float | None = None) -> bool:
        """Record one call's outcome (error kind, None = success). False if not counted."""
        if kind is None or kind == SUCCESS:
            self.record_success(duration_s)
            return True
        return self.record_failure(kind, duration_s)

    def record_success(self, duration_s: float | None = None) -> None:
        with self._lock:
            self._score = min(self.config.max_score, self._score + self.config.success_reward)
            self._successes_total += 1
            self._history.append(ScoreEvent(SUCCESS, self._clock(), duration_s, self._score))

    def record_failure(self, kind: str, duration_s: float | None = None) -> bool:
        """Apply the kind's penalty; False (and nothing recorded) when not the worker's fault."""
        penalty = self.config.penalty_for(kind)
        if penalty is None:
            return False
        with self._lock:
            self._score = max(0, self._score - penalty)
            self._failures_total += 1
            event = ScoreEvent(kind, self._clock(), duration_s, self._score)
            self._history.append(event)
            self._last_failure = event
        return True

    @property
    def score(self) -> int:
        return self._score

    def should_replace(self) -> bool:
        return self._score < self.config.replace_threshold

    def history(self) -> list[ScoreEvent]:
        """Recent events, oldest first."""
        with self._lock:
            return list(self._history)

    def success_rate(self) -> float | None:
        """Share of successes among the recent events; None before any event."""
        with self._lock:
            if not self._history:
                return None
            return sum(e.kind == SUCCESS for e in self._history) / len(self._history)

    def mean_execution_ms(self) -> float | None:
        """Mean duration of the recent successful calls that reported one, in milliseconds."""
        with self._lock:
            durations = [e.duration_s for e in self._history
                         if e.kind == SUCCESS and e.duration_s is not None]
        return 1000.0 * sum(durations) / len(durations) if durations else None

    @property
    def last_failure_at(self) -> float | None:
        event = self._last_failure
        return None if event is None else event.at

    @property
    def last_failure_kind(self) -> str | None:
        event = self._last_failure
        return None if event is None else event.kind

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-ready view for ``health``; times are seconds ago, not clock readings."""
        now = self._clock()
        last = self._last_failure
        return {
            "score": self._score,
            "should_replace": self.should_replace(),
            "success_rate": self.success_rate(),
            "mean_execution_ms": self.mean_execution_ms(),
            "events_in_history": len(self._history),
            "successes_total": self._successes_total,
            "failures_total": self._failures_total,
            "last_failure_kind": None if last is None else last.kind,
            "last_failure_seconds_ago": None if last is None else round(now - last.at, 3),
        }
