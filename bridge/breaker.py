"""Circuit breaker in front of a worker pool, in the spirit of Resilience4j.

Owns: the breaker state machine (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED), its config,
which outcomes count as failures, the sliding window of recent outcomes, the half-open probe
budget, and transition events. Must not touch: processes, sockets, threads of its own, timers,
logging of transitions (subscribers decide), or the call itself. Time comes from an injected
monotonic clock so the state machine is tested without sleeping.

Why in ``bridge``: both sides run it (the Python client in front of a sidecar, the fallback chain
in front of each pool), and ``bridge`` must never import ``sidecar`` (the import-linter contract
in pyproject.toml). It imports only ``bridge.protocol``: no I/O, no process code.

No lock is ever held across a call::

    permit = breaker.acquire()        # tiny critical section; raises CircuitOpen when rejected
    reply = pool.run(request)         # no lock held: calls run concurrently in every state
    permit.record(error_kind_or_none) # tiny critical section; may publish a transition event

    CLOSED --(consecutive failures | failure rate over window)--> OPEN
    OPEN --(open_timeout elapsed, checked lazily on acquire/snapshot)--> HALF_OPEN
    HALF_OPEN --(success_threshold successes)--> CLOSED
    HALF_OPEN --(any counted failure)--> OPEN
    operators: force_open() -> FORCED_OPEN, disable() -> DISABLED, reset()/force_close() -> CLOSED

Every transition starts a new generation; a permit records only into the generation that issued
it, so a slow call acquired in CLOSED cannot re-open (or close) a breaker that moved on.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.protocol import (
    BAD_REQUEST,
    CRASHED,
    TIMEOUT,
    UNAUTHORIZED,
    UNAVAILABLE,
    USER,
    CircuitOpen,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]

UNRESPONSIVE = "unresponsive"  # sidecar-internal: a worker that stopped answering pings


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


@dataclass(frozen=True)
class BreakerConfig:
    """Breaker knobs; mirrors ``python3.circuit-breaker`` in the YAML config."""

    enabled: bool = True
    """False starts the breaker DISABLED: every call permitted, nothing recorded."""
    failure_threshold: int = 5
    """Consecutive counted failures that open the breaker from CLOSED."""
    failure_rate_threshold: float = 0.5
    """Share of counted failures in the window (0 < r <= 1) that opens the breaker."""
    window_size: int = 20
    """Number of most recent counted calls the failure rate is computed over."""
    minimum_calls: int = 10
    """Calls the window must hold before the failure rate is evaluated at all."""
    open_timeout: float = 60.0
    """Seconds OPEN stays closed to traffic before HALF_OPEN admits probes."""
    half_open_max_probes: int = 3
    """Most probe calls HALF_OPEN lets run at the same time; the rest are rejected at once."""
    success_threshold: int = 3
    """Successful probes in HALF_OPEN that close the breaker."""
    count_timeouts: bool = True
    """Whether a ``timeout`` counts as an infrastructure failure."""

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "window_size", "minimum_calls",
                     "half_open_max_probes", "success_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"circuit-breaker {name} must be a whole number >= 1, "
                                 f"got {value!r}")
        if not 0 < self.failure_rate_threshold <= 1:
            raise ValueError("circuit-breaker failure_rate_threshold must be in (0, 1], got "
                             f"{self.failure_rate_threshold!r}; 0.5 means half the calls")
        if self.minimum_calls > self.window_size:
            raise ValueError(f"circuit-breaker minimum_calls ({self.minimum_calls}) cannot exceed "
                             f"window_size ({self.window_size}): the rate would never be checked")
        if not self.open_timeout > 0:
            raise ValueError("circuit-breaker open_timeout must be a positive number of seconds, "
                             f"got {self.open_timeout!r}")


# 'user', 'bad_request' and 'unauthorized' mean the pool served the request: they are successes
# for the breaker. 'overloaded' says nothing about health (the queue was full). Unknown kinds
# (e.g. 'internal', a sidecar bug) are ignored rather than guessed at.
_ALWAYS_FAILURE = frozenset({CRASHED, UNAVAILABLE, UNRESPONSIVE})
_SERVED = frozenset({USER, BAD_REQUEST, UNAUTHORIZED})


def classify_outcome(kind: str | None, *, count_timeouts: bool = True) -> Outcome:
    """What a call's error kind (None for success) means to the breaker."""
    if kind is None or kind in _SERVED:
        return Outcome.SUCCESS
    if kind in _ALWAYS_FAILURE or (kind == TIMEOUT and count_timeouts):
        return Outcome.FAILURE
    return Outcome.IGNORED  # OVERLOADED, timeouts when not counted, unknown kinds


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One published transition; ``at`` is the breaker clock's (monotonic) reading."""

    from_state: BreakerState
    to_state: BreakerState
    reason: str
    at: float


@dataclass(slots=True, eq=False)
class Permit:
    """Leave to run one call; report it exactly once with ``record`` (or ``release``)."""

    breaker: CircuitBreaker
    generation: int
    state: BreakerState
    _done: bool = field(default=False, repr=False)

    def record(self, outcome: str | None) -> bool:
        """Report the call's error kind (None = success). False if ignored (stale or repeat)."""
        breaker = self.breaker
        if (outcome is None and not self._done and self.generation == breaker._generation
                and breaker._quiet()):  # a success that changes nothing: no lock
            self._done = True
            return True
        return breaker._record(self, classify_outcome(
            outcome, count_timeouts=breaker.config.count_timeouts), outcome)

    def release(self) -> bool:
        """Give the permit back without an outcome (the call was never made)."""
        return self.breaker._record(self, Outcome.IGNORED, None)


class CircuitBreaker:
    """Thread-safe breaker; the lock guards only a few field updates, never a call."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock = time.monotonic,
                 name: str = "pool") -> None:
        self.config = config or BreakerConfig()
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._publish_lock = threading.RLock()  # keeps event order; reentrant for subscribers
        self._subscribers: list[Callable[[BreakerEvent], None]] = []
        self._pending: deque[BreakerEvent] = deque()
        self._state = BreakerState.CLOSED if self.config.enabled else BreakerState.DISABLED
        self._generation = 0
        self._window: deque[bool] = deque(maxlen=self.config.window_size)  # True = failure
        self._window_failures = 0
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._last_event: BreakerEvent | None = None
        self.rejected_calls = 0
        self.stale_records = 0

    # -- callers --------------------------------------------------------------------------

    def try_acquire(self) -> Permit | None:
        """A permit to run one call, or None when the breaker rejects it."""
        generation = self._generation  # read first: a transition after it makes the permit stale
        if self._quiet():  # CLOSED and settled: nothing to check or count, no lock, no clock
            return Permit(self, generation, BreakerState.CLOSED)
        result = self._acquire()
        return result if isinstance(result, Permit) else None

    def closed_generation(self) -> int:
        """The lean path's permit without a ``Permit``: the generation a call acquired now in
        CLOSED records into (``record_at``), or -1 when the breaker is not CLOSED (then only
        ``acquire`` may say what happens). Read as ``try_acquire`` reads: generation first."""
        generation = self._generation
        return generation if self._state is BreakerState.CLOSED else -1

    def record_at(self, generation: int, outcome: str | None, counted: bool = True) -> None:
        """What ``Permit(self, generation, CLOSED)`` would do with ``record(outcome)`` (or
        ``release()`` when not ``counted``); the ``Permit`` is built only when the record
        can change something (not for a success into a settled CLOSED window)."""
        if (counted and outcome is None and generation == self._generation  # _quiet(), inline
                and self._state is BreakerState.CLOSED and not self._window_failures
                and len(self._window) == self._window.maxlen):
            return
        permit = Permit(self, generation, BreakerState.CLOSED)
        if counted:
            permit.record(outcome)
        else:
            permit.release()

    def acquire(self) -> Permit:
        """A permit to run one call; raises ``CircuitOpen`` with ``retry_after`` when rejected."""
        result = self._acquire()
        if isinstance(result, Permit):
            return result
        state, retry_after = result
        if state is BreakerState.FORCED_OPEN:
            message = (f"the {self.name} circuit breaker was forced open by an operator; calls "
                       "are refused until it is closed (`py3sidecar breaker close"
                       f"{'' if self.name in ('primary', 'pool') else ' --name ' + self.name}`)")
        elif state is BreakerState.HALF_OPEN:
            message = (f"the {self.name} circuit breaker is testing recovery with "
                       f"{self.config.half_open_max_probes} probe calls; retry shortly")
        else:
            message = (f"the {self.name} circuit breaker is open after repeated worker failures; "
                       f"next probe allowed in {retry_after:.1f} s (see `py3sidecar health`)")
        raise CircuitOpen(message, details={"retry_after": retry_after, "state": str(state)})

    @property
    def state(self) -> BreakerState:
        with self._lock:
            changed = self._maybe_half_open(self._clock())
            state = self._state
        if changed:
            self._publish_pending()
        return state

    def retry_after(self) -> float | None:
        """Seconds until the next probe may run: 0 when calls pass, None when forced open."""
        with self._lock:
            return self._retry_after(self._clock())

    def subscribe(self, callback: Callable[[BreakerEvent], None]) -> None:
        """Call ``callback(event)`` on every transition, outside the state lock, in order."""
        with self._lock:
            self._subscribers.append(callback)

    # -- operators ------------------------------------------------------------------------

    def force_open(self, reason: str = "forced open by operator") -> None:
        self._operator_transition(BreakerState.FORCED_OPEN, reason)

    def reset(self, reason: str = "reset by operator") -> None:
        """Back to CLOSED with an empty window, from any state (also re-enables)."""
        self._operator_transition(BreakerState.CLOSED, reason)

    def force_close(self, reason: str = "closed by operator") -> None:
        self.reset(reason)

    def disable(self, reason: str = "disabled by operator") -> None:
        self._operator_transition(BreakerState.DISABLED, reason)

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-ready view for ``health`` and metrics."""
        with self._lock:
            now = self._clock()
            changed = self._maybe_half_open(now)
            calls = len(self._window)
            last = self._last_event
            snap: dict[str, Any] = {
                "name": self.name,
                "state": str(self._state),
                "consecutive_failures": self._consecutive_failures,
                "calls_in_window": calls,
                "failures_in_window": self._window_failures,
                "failure_rate": (self._window_failures / calls
                                 if calls >= self.config.minimum_calls else None),
                "probes_in_flight": self._probes_in_flight,
                "probe_successes": self._probe_successes,
                "retry_after": self._retry_after(now),
                "rejected_calls": self.rejected_calls,
                "stale_records": self.stale_records,
                "last_transition": None if last is None else {
                    "from": str(last.from_state), "to": str(last.to_state),
                    "reason": last.reason, "seconds_ago": round(now - last.at, 3)},
            }
        if changed:
            self._publish_pending()
        return snap

    def _quiet(self) -> bool:
        """A success now would change nothing: CLOSED with a full window of successes. Read
        without the lock (the callers' fast path): a record racing with it is ordered as if it
        came after, as it could have anyway."""
        return (self._state is BreakerState.CLOSED and not self._window_failures
                and len(self._window) == self._window.maxlen)

    # -- state machine (every method below runs under self._lock) --------------------------

    def _acquire(self) -> Permit | tuple[BreakerState, float | None]:
        with self._lock:
            now = self._clock()
            changed = self._maybe_half_open(now)
            state = self._state
            if state is BreakerState.HALF_OPEN:
                if self._probes_in_flight < self.config.half_open_max_probes:
                    self._probes_in_flight += 1
                    result: Permit | tuple[BreakerState, float | None] = Permit(
                        self, self._generation, state)
                else:
                    result = (state, self._retry_after(now))
            elif state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
                result = (state, self._retry_after(now))
            else:
                result = Permit(self, self._generation, state)
            if not isinstance(result, Permit):
                self.rejected_calls += 1
        if changed:
            self._publish_pending()
        return result

    def _record(self, permit: Permit, outcome: Outcome, kind: str | None) -> bool:
        with self._lock:
            if permit._done:
                return False
            permit._done = True
            if permit.generation != self._generation:
                self.stale_records += 1
                return False
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                changed = self._record_closed(outcome, now)
            elif self._state is BreakerState.HALF_OPEN:
                changed = self._record_half_open(outcome, kind, now)
            else:  # DISABLED: nothing is measured
                return False
        if changed:
            self._publish_pending()
        return True

    def _record_closed(self, outcome: Outcome, now: float) -> bool:
        if outcome is Outcome.IGNORED:
            return False
        failed = outcome is Outcome.FAILURE
        if len(self._window) == self._window.maxlen and self._window[0]:
            self._window_failures -= 1
        self._window.append(failed)
        self._window_failures += failed
        self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
        cfg = self.config
        if self._consecutive_failures >= cfg.failure_threshold:
            self._transition(BreakerState.OPEN, now,
                             f"{self._consecutive_failures} consecutive failures")
            return True
        # Checked after successes too (as Resilience4j does): the window may reach minimum_calls
        # on a success while already at the threshold.
        calls, failures = len(self._window), self._window_failures
        if calls >= cfg.minimum_calls and failures / calls >= cfg.failure_rate_threshold:
            self._transition(BreakerState.OPEN, now, f"failure rate {failures}/{calls} calls"
                             f" >= {cfg.failure_rate_threshold:g}")
            return True
        return False

    def _record_half_open(self, outcome: Outcome, kind: str | None, now: float) -> bool:
        self._probes_in_flight -= 1
        if outcome is Outcome.FAILURE:
            self._transition(BreakerState.OPEN, now, f"probe failed ({kind})")
            return True
        if outcome is Outcome.SUCCESS:
            self._probe_successes += 1
            if self._probe_successes >= self.config.success_threshold:
                self._transition(BreakerState.CLOSED, now,
                                 f"{self._probe_successes} successful probes")
                return True
        return False

    def _maybe_half_open(self, now: float) -> bool:
        if (self._state is BreakerState.OPEN
                and now >= self._opened_at + self.config.open_timeout):
            self._transition(BreakerState.HALF_OPEN, now,
                             f"open for {self.config.open_timeout:g} s")
            return True
        return False

    def _retry_after(self, now: float) -> float | None:
        if self._state is BreakerState.FORCED_OPEN:
            return None
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.config.open_timeout - now)
        return 0.0

    def _transition(self, to_state: BreakerState, now: float, reason: str) -> None:
        event = BreakerEvent(self._state, to_state, reason, now)
        self._state = to_state
        self._generation += 1
        self._window.clear()
        self._window_failures = 0
        self._consecutive_failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        if to_state is BreakerState.OPEN:
            self._opened_at = now
        self._last_event = event
        self._pending.append(event)

    def _operator_transition(self, to_state: BreakerState, reason: str) -> None:
        with self._lock:
            self._transition(to_state, self._clock(), reason)
        self._publish_pending()

    def _publish_pending(self) -> None:
        with self._publish_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    event = self._pending.popleft()
                    subscribers = list(self._subscribers)
                for callback in subscribers:
                    try:
                        callback(event)
                    except Exception:  # a broken subscriber must not break the breaker
                        log.exception("circuit breaker subscriber %r failed on %s", callback, event)
