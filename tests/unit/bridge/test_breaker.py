"""Covers: bridge.breaker, bridge.protocol.

Circuit breaker state machine: every transition, under a fake clock and under real threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from bridge.breaker import (
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Outcome,
    Permit,
    classify_outcome,
)
from bridge.protocol import TIMEOUT, CircuitOpen

from ..clock_double import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
FORCED_OPEN, DISABLED = BreakerState.FORCED_OPEN, BreakerState.DISABLED



@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[BreakerEvent]:
    return []


@pytest.fixture
def make(clock: FakeClock, events: list[BreakerEvent]) -> Callable[..., CircuitBreaker]:
    def _make(**config: object) -> CircuitBreaker:
        breaker = CircuitBreaker(BreakerConfig(**config), clock=clock)  # type: ignore[arg-type]
        breaker.subscribe(events.append)
        return breaker
    return _make


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads very often so races actually interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run(breaker: CircuitBreaker, *outcomes: str | None) -> None:
    """One call per outcome, each acquired and recorded in turn."""
    for outcome in outcomes:
        permit = breaker.try_acquire()
        assert permit is not None, f"call rejected in state {breaker.state}"
        permit.record(outcome)


def trip(breaker: CircuitBreaker) -> None:
    run(breaker, *["crashed"] * breaker.config.failure_threshold)
    assert breaker.state is OPEN


def to_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(breaker.config.open_timeout)
    assert breaker.state is HALF_OPEN


def transitions(events: list[BreakerEvent]) -> list[tuple[BreakerState, BreakerState]]:
    return [(e.from_state, e.to_state) for e in events]


# -- config and classification ------------------------------------------------------------------

def test_defaults_match_the_spec() -> None:
    cfg = BreakerConfig()
    assert (cfg.enabled, cfg.failure_threshold, cfg.failure_rate_threshold, cfg.window_size,
            cfg.minimum_calls, cfg.open_timeout, cfg.half_open_max_probes, cfg.success_threshold,
            cfg.count_timeouts) == (True, 5, 0.5, 20, 10, 60.0, 3, 3, True)


@pytest.mark.parametrize("bad, words", [
    ({"failure_threshold": 0}, "failure_threshold"),
    ({"window_size": 0}, "window_size"),
    ({"half_open_max_probes": 0}, "half_open_max_probes"),
    ({"success_threshold": 1.5}, "success_threshold"),
    ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
    ({"failure_rate_threshold": 1.2}, "failure_rate_threshold"),
    ({"minimum_calls": 30}, "cannot exceed window_size"),
    ({"open_timeout": 0}, "open_timeout"),
])
def test_invalid_config_is_rejected_with_its_name(bad: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        BreakerConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind, count_timeouts, expected", [
    (None, True, Outcome.SUCCESS),
    ("user", True, Outcome.SUCCESS),
    ("bad_request", True, Outcome.SUCCESS),
    ("unauthorized", True, Outcome.SUCCESS),
    ("crashed", True, Outcome.FAILURE),
    ("unavailable", True, Outcome.FAILURE),
    ("unresponsive", True, Outcome.FAILURE),
    ("timeout", True, Outcome.FAILURE),
    ("timeout", False, Outcome.IGNORED),
    ("crashed", False, Outcome.FAILURE),
    ("overloaded", True, Outcome.IGNORED),
    ("internal", True, Outcome.IGNORED),
    ("circuit_open", True, Outcome.IGNORED),
])
def test_classify_outcome(kind: str | None, count_timeouts: bool, expected: Outcome) -> None:
    assert classify_outcome(kind, count_timeouts=count_timeouts) is expected


# -- CLOSED -> OPEN -----------------------------------------------------------------------------

def test_opens_on_the_fifth_consecutive_failure(make, events, clock) -> None:
    breaker = make()
    run(breaker, *["crashed"] * 4)
    assert breaker.state is CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 4
    clock.advance(2.5)
    run(breaker, "unresponsive")
    assert breaker.state is OPEN
    assert events == [BreakerEvent(CLOSED, OPEN, "5 consecutive failures", 1002.5)]


def test_a_success_resets_the_consecutive_count(make) -> None:
    breaker = make()
    run(breaker, *["crashed"] * 4, None, *["crashed"] * 4)
    assert breaker.state is CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 4


def test_user_errors_never_count_and_reset_the_streak(make, events) -> None:
    breaker = make()
    run(breaker, *["user"] * 200)
    run(breaker, *["crashed", "crashed", "user"] * 3)  # 6 of 9 failed, never 5 in a row
    snap = breaker.snapshot()
    assert breaker.state is CLOSED
    assert events == []
    assert (snap["consecutive_failures"], snap["failures_in_window"]) == (0, 6)
    assert snap["calls_in_window"] == 20


def test_overloaded_is_neither_success_nor_failure(make) -> None:
    breaker = make()
    run(breaker, *["crashed"] * 4, "overloaded", "overloaded")
    assert breaker.snapshot()["calls_in_window"] == 4
    run(breaker, "crashed")  # the streak was not broken by 'overloaded'
    assert breaker.state is OPEN


def test_timeouts_ignored_when_not_counted(make) -> None:
    breaker = make(count_timeouts=False)
    run(breaker, *["timeout"] * 30)
    snap = breaker.snapshot()
    assert (breaker.state, snap["calls_in_window"], snap["consecutive_failures"]) == (CLOSED, 0, 0)


def test_failure_rate_waits_for_minimum_calls(make, events) -> None:
    breaker = make()  # rate 0.5 over 20, minimum 10, never 5 failures in a row
    run(breaker, *["crashed", "crashed", None] * 3)  # 6/9 failures, below minimum_calls
    snap = breaker.snapshot()
    assert breaker.state is CLOSED
    assert (snap["calls_in_window"], snap["failures_in_window"]) == (9, 6)
    assert snap["failure_rate"] is None
    run(breaker, None)  # 10th call: 6/10 >= 0.5, trips even though this call succeeded
    assert breaker.state is OPEN
    assert events[-1].reason == "failure rate 6/10 calls >= 0.5"


def test_failure_rate_below_threshold_stays_closed(make) -> None:
    breaker = make()
    run(breaker, *["crashed", None, None] * 10)  # 10 of 30, window holds the last 20
    snap = breaker.snapshot()
    assert breaker.state is CLOSED
    assert (snap["calls_in_window"], snap["failures_in_window"]) == (20, 6)
    assert snap["failure_rate"] == pytest.approx(0.3)


def test_old_failures_slide_out_of_the_window(make) -> None:
    breaker = make(window_size=4, minimum_calls=4, failure_rate_threshold=0.75,
                   failure_threshold=10)
    run(breaker, "crashed", "crashed", None, None)  # 2/4
    run(breaker, None, None)  # window S S S S
    assert breaker.snapshot()["failures_in_window"] == 0
    run(breaker, "crashed", "crashed")  # S S F F = 0.5
    assert breaker.state is CLOSED
    run(breaker, "crashed")  # S F F F = 0.75
    assert breaker.state is OPEN


# -- OPEN -> HALF_OPEN -> CLOSED / OPEN ---------------------------------------------------------

def test_open_rejects_with_retry_after(make, clock) -> None:
    breaker = make()
    trip(breaker)
    clock.advance(10)
    assert breaker.try_acquire() is None
    with pytest.raises(CircuitOpen) as info:
        breaker.acquire()
    err = info.value
    assert err.kind == "circuit_open"
    assert err.details == {"retry_after": 50.0, "state": "open"}
    assert "50.0 s" in err.message
    assert breaker.retry_after() == 50.0
    assert breaker.snapshot()["rejected_calls"] == 2


def test_open_turns_half_open_exactly_at_the_timeout(make, clock, events) -> None:
    breaker = make()
    trip(breaker)
    clock.advance(59.999)
    assert breaker.try_acquire() is None
    clock.advance(0.001)
    permit = breaker.try_acquire()
    assert permit is not None and permit.state is HALF_OPEN
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert events[-1].at == 1060.0


def test_half_open_closes_after_success_threshold(make, clock, events) -> None:
    breaker = make()
    to_half_open(breaker, clock)
    probes = [breaker.try_acquire() for _ in range(3)]
    assert all(isinstance(p, Permit) for p in probes)
    probes[0].record(None)
    probes[1].record("user")  # the pool served it: a good probe
    assert breaker.state is HALF_OPEN
    probes[2].record(None)
    assert breaker.state is CLOSED
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert events[-1].reason == "3 successful probes"
    snap = breaker.snapshot()
    assert (snap["calls_in_window"], snap["consecutive_failures"]) == (0, 0)


def test_half_open_admits_only_max_probes_until_one_finishes(make, clock) -> None:
    breaker = make()
    to_half_open(breaker, clock)
    probes = [breaker.try_acquire() for _ in range(3)]
    assert breaker.try_acquire() is None
    with pytest.raises(CircuitOpen) as info:
        breaker.acquire()
    assert info.value.details["retry_after"] == 0.0
    probes[0].record("overloaded")  # frees the slot, proves nothing
    assert breaker.snapshot()["probe_successes"] == 0
    replacement = breaker.try_acquire()
    assert replacement is not None
    assert breaker.try_acquire() is None
    replacement.release()
    assert breaker.snapshot()["probes_in_flight"] == 2


def test_half_open_failure_reopens_and_restarts_the_timer(make, clock, events) -> None:
    breaker = make()
    to_half_open(breaker, clock)
    probe = breaker.try_acquire()
    clock.advance(5)
    probe.record("timeout")
    assert breaker.state is OPEN
    assert events[-1] == BreakerEvent(HALF_OPEN, OPEN, "probe failed (timeout)", 1065.0)
    clock.advance(59)
    assert breaker.retry_after() == 1.0
    assert breaker.try_acquire() is None


def test_success_threshold_larger_than_probe_budget(make, clock) -> None:
    breaker = make(half_open_max_probes=1, success_threshold=3)
    to_half_open(breaker, clock)
    for _ in range(2):
        run(breaker, None)
        assert breaker.state is HALF_OPEN
    run(breaker, None)
    assert breaker.state is CLOSED


# -- stale and repeated permits -----------------------------------------------------------------

def test_slow_call_from_closed_cannot_touch_half_open(make, clock, events) -> None:
    breaker = make()
    slow_failure, slow_success = breaker.try_acquire(), breaker.try_acquire()
    to_half_open(breaker, clock)
    assert slow_failure.record("crashed") is False
    assert slow_success.record(None) is False
    snap = breaker.snapshot()
    assert breaker.state is HALF_OPEN
    assert (snap["probe_successes"], snap["probes_in_flight"], snap["stale_records"]) == (0, 0, 2)
    assert len([breaker.try_acquire() for _ in range(3)]) == 3
    assert breaker.try_acquire() is None
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_late_probes_after_reopen_are_ignored(make, clock) -> None:
    breaker = make()
    to_half_open(breaker, clock)
    first, second, third = (breaker.try_acquire() for _ in range(3))
    first.record("crashed")
    assert second.record(None) is False
    assert third.record(None) is False
    assert breaker.state is OPEN


def test_failures_before_reset_do_not_count_after(make) -> None:
    breaker = make()
    pending = [breaker.try_acquire() for _ in range(5)]
    breaker.reset()
    for permit in pending:
        permit.record("crashed")
    assert breaker.state is CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 0


def test_a_permit_records_once(make) -> None:
    breaker = make()
    permit = breaker.try_acquire()
    assert permit.record("crashed") is True
    for _ in range(10):
        assert permit.record("crashed") is False
    assert breaker.snapshot()["consecutive_failures"] == 1


# -- operator controls --------------------------------------------------------------------------

def test_forced_open_rejects_until_closed(make, clock, events) -> None:
    breaker = make()
    breaker.force_open()
    clock.advance(3600)
    assert breaker.state is FORCED_OPEN
    with pytest.raises(CircuitOpen) as info:
        breaker.acquire()
    assert info.value.details == {"retry_after": None, "state": "forced_open"}
    assert "py3sidecar breaker close" in info.value.message
    breaker.force_close()
    run(breaker, None)
    assert transitions(events) == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]
    assert [e.reason for e in events] == ["forced open by operator", "closed by operator"]


def test_reset_from_open_closes_at_once(make, clock) -> None:
    breaker = make()
    trip(breaker)
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.retry_after() == 0.0
    run(breaker, *["crashed"] * 4)
    assert breaker.state is CLOSED


def test_disabled_permits_everything_and_records_nothing(make, events) -> None:
    breaker = make()
    breaker.disable()
    run(breaker, *["crashed"] * 100)
    snap = breaker.snapshot()
    assert breaker.state is DISABLED
    assert (snap["calls_in_window"], snap["consecutive_failures"]) == (0, 0)
    assert transitions(events) == [(CLOSED, DISABLED)]
    breaker.reset()
    trip(breaker)


def test_enabled_false_starts_disabled(make) -> None:
    breaker = make(enabled=False)
    assert breaker.state is DISABLED
    run(breaker, *["crashed"] * 50)
    assert breaker.state is DISABLED


# -- events and snapshot ------------------------------------------------------------------------

def test_a_broken_subscriber_does_not_stop_the_others(make, events) -> None:
    breaker = make()

    def broken(event: BreakerEvent) -> None:
        raise RuntimeError("subscriber bug")

    breaker.subscribe(broken)
    seen: list[BreakerEvent] = []
    breaker.subscribe(seen.append)
    trip(breaker)
    assert transitions(events) == transitions(seen) == [(CLOSED, OPEN)]


def test_a_subscriber_may_call_back_into_the_breaker(make) -> None:
    breaker = make()
    states: list[str] = []
    breaker.subscribe(lambda event: states.append(breaker.snapshot()["state"]))
    breaker.subscribe(lambda event: event.to_state is OPEN and breaker.force_open())
    run(breaker, *["crashed"] * 5)
    assert states == ["open", "forced_open"]
    assert breaker.state is FORCED_OPEN


def test_snapshot_values(make, clock) -> None:
    breaker = make()
    run(breaker, None, "crashed", "user", "crashed", "crashed")
    assert breaker.snapshot() == {
        "name": "pool", "state": "closed", "consecutive_failures": 2, "calls_in_window": 5,
        "failures_in_window": 3, "failure_rate": None, "probes_in_flight": 0,
        "probe_successes": 0, "retry_after": 0.0, "rejected_calls": 0, "stale_records": 0,
        "last_transition": None,
    }
    run(breaker, "crashed", "crashed", "crashed")
    clock.advance(12.5)
    snap = breaker.snapshot()
    assert (snap["state"], snap["retry_after"]) == ("open", 47.5)
    assert snap["last_transition"] == {"from": "closed", "to": "open",
                                       "reason": "5 consecutive failures", "seconds_ago": 12.5}
    clock.advance(47.5)
    assert breaker.snapshot()["state"] == "half_open"  # the snapshot itself reports the move


# -- real concurrency ---------------------------------------------------------------------------

def race(n: int, action: Callable[[int], object]) -> list[object]:
    """Run ``action(i)`` in ``n`` threads released together; return the results in order."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait(timeout=10)
        results[i] = action(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a racing thread never finished"
    return results


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("round_", range(20))
def test_half_open_race_admits_exactly_max_probes(make, clock, events, round_: int) -> None:
    breaker = make()
    trip(breaker)
    clock.advance(60)  # still OPEN: the racing threads also race the lazy move to HALF_OPEN
    results = race(50, lambda i: breaker.try_acquire())
    permits = [r for r in results if r is not None]
    assert len(permits) == 3
    assert transitions(events) == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert breaker.snapshot()["rejected_calls"] == 47


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_failures_open_once_and_the_rest_are_stale(make, events) -> None:
    breaker = make()
    permits = [breaker.try_acquire() for _ in range(50)]  # 50 calls in flight, no lock held
    assert all(p is not None for p in permits)
    race(50, lambda i: permits[i].record("crashed"))
    assert transitions(events) == [(CLOSED, OPEN)]
    assert breaker.snapshot()["stale_records"] == 45


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_probe_successes_close_once(make, clock, events) -> None:
    breaker = make(half_open_max_probes=10, success_threshold=3)
    to_half_open(breaker, clock)
    probes = [breaker.try_acquire() for _ in range(10)]
    race(10, lambda i: probes[i].record(None))
    assert transitions(events)[-1] == (HALF_OPEN, CLOSED)
    assert transitions(events).count((HALF_OPEN, CLOSED)) == 1
    assert breaker.snapshot()["stale_records"] == 7


class Clock:
    """Test double for the breaker's monotonic clock."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, name: str = "pool", **config) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(**config), clock=clock, name=name)


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        b.acquire().record("crashed")


@pytest.mark.parametrize(("config", "message"), [
    ({"failure_rate_threshold": 0.0}, "circuit-breaker failure_rate_threshold must be in (0, 1], "
                                      "got 0.0; 0.5 means half the calls"),
    ({"failure_rate_threshold": 1.5}, "circuit-breaker failure_rate_threshold must be in (0, 1], "
                                      "got 1.5; 0.5 means half the calls"),
    ({"open_timeout": 0}, "circuit-breaker open_timeout must be a positive number of seconds, "
                          "got 0"),
    ({"minimum_calls": 30, "window_size": 20},
     "circuit-breaker minimum_calls (30) cannot exceed window_size (20): the rate would never "
     "be checked"),
    ({"success_threshold": 0}, "circuit-breaker success_threshold must be a whole number >= 1, "
                               "got 0"),
])
def test_config_refusals_read_exactly(config, message):
    with pytest.raises(ValueError) as info:
        BreakerConfig(**config)
    assert str(info.value) == message


def test_the_edges_of_the_config_are_accepted():
    BreakerConfig(failure_rate_threshold=1.0, open_timeout=0.5)


def test_timeouts_count_unless_told_otherwise():
    assert classify_outcome(TIMEOUT) is Outcome.FAILURE
    assert classify_outcome(TIMEOUT, count_timeouts=False) is Outcome.IGNORED


def test_what_a_refused_caller_reads_when_forced_open():
    clock = Clock()
    for name, hint in (("pool", ""), ("primary", ""), ("reports", " --name reports")):
        b = breaker(clock, name=name)
        b.force_open()
        with pytest.raises(CircuitOpen) as info:
            b.acquire()
        assert str(info.value) == (
            f"the {name} circuit breaker was forced open by an operator; calls are refused "
            f"until it is closed (`py3sidecar breaker close{hint}`)")
        assert info.value.details == {"retry_after": None, "state": "forced_open"}


def test_what_a_refused_caller_reads_while_half_open_and_open():
    clock = Clock()
    b = breaker(clock, failure_threshold=1, open_timeout=10.0, half_open_max_probes=1)
    fail(b)
    clock.now = 2.5
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert str(info.value) == ("the pool circuit breaker is open after repeated worker "
                               "failures; next probe allowed in 7.5 s (see `py3sidecar health`)")
    assert info.value.details == {"retry_after": 7.5, "state": "open"}
    clock.now = 10.0
    probe = b.acquire()
    assert probe.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert str(info.value) == ("the pool circuit breaker is testing recovery with 1 probe "
                               "calls; retry shortly")
    assert info.value.details == {"retry_after": 0.0, "state": "half_open"}


def test_retry_after_counts_down_to_zero_and_the_move_is_explained():
    clock = Clock(100.0)
    b = breaker(clock, failure_threshold=1, open_timeout=4.0)
    assert b.retry_after() == 0.0
    fail(b)
    clock.now = 103.5
    assert b.retry_after() == 0.5
    clock.now = 104.0
    assert b.state is BreakerState.HALF_OPEN and b.retry_after() == 0.0
    assert b.snapshot()["last_transition"]["reason"] == "open for 4 s"


def test_a_permit_carries_the_state_and_generation_it_was_granted_in():
    clock = Clock()
    b = breaker(clock, failure_threshold=1, open_timeout=1.0)
    first = b.acquire()
    assert first.state is BreakerState.CLOSED and first.generation == 0
    first.record("crashed")  # opens: generation 1
    clock.now = 1.0  # half-open: generation 2
    probe = b.acquire()
    assert probe.generation == 2 and probe.state is BreakerState.HALF_OPEN


def test_a_record_from_an_older_generation_is_stale():
    clock = Clock()
    b = breaker(clock, failure_threshold=2)
    old = b.acquire()
    b.reset()
    assert old.record("crashed") is False and b.snapshot()["stale_records"] == 1
    assert b.snapshot()["consecutive_failures"] == 0


def test_a_transition_empties_the_window():
    clock = Clock()
    b = breaker(clock, failure_threshold=5, window_size=4, minimum_calls=4,
                failure_rate_threshold=1.0)
    fail(b, 3)
    b.reset()
    for _ in range(3):
        b.acquire().record(None)
    b.acquire().record("crashed")
    snap = b.snapshot()
    assert (snap["calls_in_window"], snap["failures_in_window"]) == (4, 1)
    assert snap["failure_rate"] == 0.25 and snap["state"] == "closed"


def test_the_failure_rate_is_shown_from_exactly_minimum_calls():
    clock = Clock()
    b = breaker(clock, failure_threshold=10, window_size=5, minimum_calls=3,
                failure_rate_threshold=1.0)
    b.acquire().record(None)
    b.acquire().record(None)
    assert b.snapshot()["failure_rate"] is None
    b.acquire().record("crashed")
    assert b.snapshot()["failure_rate"] == pytest.approx(1 / 3)


def test_the_last_transition_is_timed_to_the_millisecond():
    clock = Clock(10.0)
    b = breaker(clock)
    b.force_open()
    clock.now = 10.12345
    assert b.snapshot()["last_transition"] == {
        "from": "closed", "to": "forced_open", "reason": "forced open by operator",
        "seconds_ago": 0.123}


def test_operator_verbs_say_so_by_default():
    clock = Clock()
    b = breaker(clock)
    seen: list[str] = []
    b.subscribe(lambda event: seen.append(event.reason))
    b.disable()
    assert b.state is BreakerState.DISABLED
    b.reset()
    b.force_open()
    b.force_close()
    assert seen == ["disabled by operator", "reset by operator", "forced open by operator",
                    "closed by operator"]
    b.disable("maintenance")
    assert seen[-1] == "maintenance"


def test_a_disabled_breaker_records_nothing():
    clock = Clock()
    b = breaker(clock, enabled=False)
    permit = b.acquire()
    assert permit.state is BreakerState.DISABLED
    assert permit.record("crashed") is False and b.snapshot()["consecutive_failures"] == 0


class CountingLock:
    """Test double for the breaker's lock: counts how often it is taken."""

    def __init__(self) -> None:
        self.inner = threading.Lock()
        self.taken = 0

    def __enter__(self) -> bool:
        self.taken += 1
        return self.inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)


def test_a_settled_breaker_passes_successes_without_its_lock():
    """CLOSED with a full window of successes: a success changes nothing, so the permit and its
    record take no lock; a failure, or a breaker that moved on meanwhile, takes the usual way."""
    b = CircuitBreaker(BreakerConfig(failure_threshold=2, window_size=3, minimum_calls=3))
    for _ in range(3):
        b.try_acquire().record(None)
    before = b.snapshot()
    b._lock = CountingLock()
    for _ in range(50):
        assert b.try_acquire().record(None) is True
    assert b._lock.taken == 0
    assert b.snapshot() == before
    stale = b.try_acquire()
    b.force_open()
    assert stale.record(None) is False and b.stale_records == 1  # its generation is gone
    b.reset()
    for _ in range(3):
        b.try_acquire().record(None)
    b.try_acquire().record("crashed")  # the first failure: counted, the window no longer settled
    assert b.snapshot()["failures_in_window"] == 1 and b.state is CLOSED
    b.try_acquire().record("crashed")
    assert b.state is OPEN


def test_record_at_a_closed_generation_is_what_a_permit_records():
    """The lean path's permit-less record (sidecar/routing/lean.py): the same outcomes give the
    same states, transitions and counts as permits from ``acquire`` do."""
    outcomes = [None, None, "crashed", None, "user", "crashed", "crashed", None]
    config = BreakerConfig(failure_threshold=2, window_size=4, minimum_calls=2)
    clock = FakeClock()
    with_permits = CircuitBreaker(config, clock=clock)
    lean = CircuitBreaker(config, clock=clock)
    for outcome in outcomes:
        clock.advance(0.1)
        if with_permits.state is BreakerState.CLOSED:
            with_permits.acquire().record(outcome)
        generation = lean.closed_generation()
        assert (generation >= 0) == (lean.state is BreakerState.CLOSED)
        if generation >= 0:
            lean.record_at(generation, outcome)
        assert lean.snapshot() == with_permits.snapshot()
    assert lean.state is BreakerState.OPEN and lean.closed_generation() == -1
    stale = CircuitBreaker(config, clock=clock)
    generation = stale.closed_generation()
    stale.force_open()
    stale.reset()  # a new generation: the old one's record is stale, as a permit's would be
    stale.record_at(generation, "crashed")
    stale.record_at(generation, "crashed", counted=False)
    assert stale.snapshot()["stale_records"] == 2 and stale.state is BreakerState.CLOSED
