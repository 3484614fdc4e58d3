"""Covers: sidecar.routing.quarantine, bridge.protocol, bridge.breaker, bridge.codec,
sidecar.config.model, sidecar.config.settings, sidecar.pool.call, sidecar.routing.chain.

The poison-request quarantine as a pure policy: an injected clock, no processes, no sleeping."""

from __future__ import annotations

import hashlib

import pytest

from bridge import protocol
from bridge.breaker import BreakerConfig, CircuitBreaker
from bridge.codec import pack_raw, packb, unpack_raw
from sidecar.config.model import ConfigError, load
from sidecar.config.settings import quarantine_config
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.routing import quarantine as quarantine_module
from sidecar.routing.chain import FallbackChain, Strategy
from sidecar.routing.quarantine import (
    Quarantine,
    QuarantineConfig,
    QuarantineEvent,
    quarantine_op,
    refusal,
)

KEY = b"quarantine-test-key"  # the key of every Quarantine made by make(): see fingerprint()


def fingerprint(request: dict):
    """The fingerprint a Quarantine made by ``make`` gives ``request``."""
    return quarantine_module.fingerprint(request, KEY)


class FakeClock:
    """Test double for the monotonic clock: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def execute(code: str, **extra) -> dict:
    return {"v": 1, "op": "execute", "code": code, "token": "t", "id": 1, **extra}


POISON = execute("import os\nos._exit(3)", vars={"secret": "s3cr3t-value", "n": 5})


@pytest.fixture
def clock():
    return FakeClock()


def make(clock, events=None, **config) -> Quarantine:
    q = Quarantine(QuarantineConfig(**config), clock=clock, wall_clock=lambda: 1_700_000_000.0,
                   key=KEY)
    if events is not None:
        q.subscribe(events.append)
    return q


def test_fingerprint_ignores_id_token_timeout_and_map_order_but_not_arguments():
    base = fingerprint(POISON)
    same = fingerprint({"timeout": 3.0, "id": "other", "token": "x", "op": "execute",
                        "vars": {"n": 5, "secret": "s3cr3t-value"}, "v": 1,
                        "code": "import os\nos._exit(3)"})
    assert same == base
    assert fingerprint(execute("import os\nos._exit(3)", vars={"secret": "x", "n": 5})).id \
        != base.id
    assert fingerprint({"op": "call", "target": "m:f", "args": [1]}).id != fingerprint(
        {"op": "call", "target": "m:f", "args": [2]}).id
    assert (base.op, base.label) == ("execute", "import os")
    assert fingerprint({"op": "call", "target": "pkg.mod:f", "args": [1]}).label == "pkg.mod:f"


def test_fingerprint_of_raw_extension_values_is_stable():
    # The sidecar fingerprints unpack_raw'd envelopes: extension values stay undecoded bytes.
    request = {"op": "call", "target": "m:f", "args": [10**30], "id": 1, "token": "t"}
    raw = unpack_raw(packb(request))
    assert fingerprint(raw) == fingerprint(unpack_raw(packb({**request, "id": 2})))
    assert fingerprint(raw) != fingerprint(unpack_raw(packb({**request, "args": [10**31]})))


def test_second_crash_within_the_window_quarantines_and_repeats_do_not_count(clock):
    events: list[QuarantineEvent] = []
    q = make(clock, events)
    fp = fingerprint(POISON)
    assert q.check(POISON) is None
    assert q.record_crash(fp) is True  # the first crash counts toward the breaker
    assert q.check(POISON) is None and events == []
    clock.now += 5
    assert q.record_crash(fp) is False  # a repeat does not
    entry = q.check(POISON)
    assert entry is not None and entry["fingerprint"] == fp.id and entry["crashes"] == 2
    assert entry["expires_in"] == 1800.0 and entry["label"] == "import os"
    assert [(e.action, e.fingerprint, e.crashes) for e in events] == [("quarantined", fp.id, 2)]
    assert q.check({**POISON, "id": 99, "timeout": 1.0}) is not None  # same request, new id
    assert q.check(execute("import os\nos._exit(3)", vars={"n": 6})) is None  # other args
    assert q.refused == 2 and q.crashes_not_counted == 1


def test_calls_in_flight_together_are_one_incident_not_two(clock):
    """Two workers killed at once while both ran the same popular request: the second crash's
    call was admitted before the first crash, so it is no new evidence; a call sent after the
    crash that crashes again is."""
    q = make(clock)
    fp = fingerprint(POISON)
    admitted = clock.now
    clock.now += 1
    assert q.record_crash(fp, admitted) is True
    assert q.record_crash(fp, admitted) is False  # same incident
    assert q.check(POISON) is None
    clock.now += 1
    assert q.record_crash(fp, clock.now - 0.5) is False  # sent after the crash: counts here
    assert q.check(POISON) is not None


def test_crashes_outside_the_window_do_not_add_up(clock):
    q = make(clock, window=60.0)
    fp = fingerprint(POISON)
    assert q.record_crash(fp) is True
    clock.now += 61
    assert q.record_crash(fp) is True  # counts again: the earlier crash left the window
    assert q.check(POISON) is None
    clock.now += 1
    assert q.record_crash(fp) is False
    assert q.check(POISON) is not None


def test_a_run_in_between_forgets_the_crashes_of_a_request_killed_from_outside(clock):
    # e.g. the OOM killer or an operator killed the worker while an innocent, frequent request
    # was in flight: it ran fine before and after, so it is no poison.
    events: list[QuarantineEvent] = []
    q = make(clock, events)
    fp = fingerprint(POISON)
    assert q.record_crash(fp) is True
    assert q.tracking
    q.record_run({**POISON, "id": 5})
    assert not q.tracking
    assert q.record_crash(fp) is True  # counts toward the breaker again: a new failure
    assert q.check(POISON) is None and events == []
    q.record_run(execute("something_else()"))  # another request's run changes nothing
    assert q.record_crash(fp) is False and q.check(POISON) is not None
    q.record_run(POISON)  # a quarantined one stays quarantined (a run that raced the second)
    assert q.check(POISON) is not None


def test_crash_records_leave_with_the_window(clock):
    q = make(clock, window=60.0)
    q.record_crash(fingerprint(execute("a()")))
    clock.now += 30
    q.record_crash(fingerprint(execute("b()")))
    clock.now += 31
    q.sweep()
    assert q.snapshot()["tracked"] == 1  # a() left the window, b() has not
    clock.now += 30
    q.sweep()
    assert not q.tracking


def test_ttl_expires_with_an_event_and_the_request_may_run_again(clock):
    events: list[QuarantineEvent] = []
    q = make(clock, events, ttl=100.0)
    fp = fingerprint(POISON)
    q.record_crash(fp)
    q.record_crash(fp)
    clock.now += 99.9
    assert q.check(POISON) is not None
    clock.now += 0.2
    q.sweep()
    assert [e.action for e in events] == ["quarantined", "expired"]
    assert q.check(POISON) is None and q.entries() == []
    assert q.record_crash(fp) is True  # a fresh start


def test_operator_clears_one_or_all(clock):
    events: list[QuarantineEvent] = []
    q = make(clock, events)
    other = execute("boom()")
    for request in (POISON, POISON, other, other):
        q.record_crash(fingerprint(request))
    assert len(q.entries()) == 2
    with pytest.raises(KeyError):
        q.clear("0123456789abcdef")
    assert q.clear(fingerprint(POISON).id) == [fingerprint(POISON).id]
    assert q.check(POISON) is None and q.check(other) is not None
    assert q.clear() == [fingerprint(other).id]
    assert q.check(other) is None and q.snapshot()["tracked"] == 0
    assert [e.action for e in events] == ["quarantined", "quarantined", "cleared", "cleared"]


def test_entries_are_bounded_crash_records_go_first(clock):
    events: list[QuarantineEvent] = []
    q = make(clock, events, max_entries=3)
    held = [execute(f"held{i}()") for i in range(2)]
    for request in held:
        q.record_crash(fingerprint(request))
        q.record_crash(fingerprint(request))
    for i in range(5):  # single crashes of distinct requests: only the newest is remembered
        q.record_crash(fingerprint(execute(f"once{i}()")))
    assert q.snapshot()["tracked"] == 3
    assert all(q.check(r) is not None for r in held)
    assert [e.action for e in events] == ["quarantined", "quarantined"]
    third, fourth = execute("held2()"), execute("held3()")
    for request in (third, fourth):  # the third takes the crash record's place; the fourth
        q.record_crash(fingerprint(request))  # pushes out the oldest quarantined one
        q.record_crash(fingerprint(request))
    assert q.check(held[0]) is None
    assert all(q.check(r) is not None for r in (held[1], third, fourth))
    assert [e.action for e in events][2:] == ["quarantined", "evicted", "quarantined"]


def test_health_view_never_holds_the_arguments(clock):
    q = make(clock)
    fp = fingerprint(POISON)
    q.record_crash(fp)
    q.record_crash(fp)
    snapshot = q.snapshot()
    assert "s3cr3t-value" not in repr(snapshot)
    [entry] = snapshot["entries"]
    assert set(entry) == {"fingerprint", "op", "label", "crashes", "since", "expires",
                          "expires_in"}
    assert entry["since"] == 1_700_000_000.0 and entry["expires"] == 1_700_001_800.0
    message, details = refusal(entry)
    assert fp.id in message and "py3sidecar quarantine clear" in message
    assert details["retry_after"] == 1800.0 and "s3cr3t-value" not in message


def test_disabled_counts_every_crash_and_holds_nothing(clock):
    q = make(clock, enabled=False)
    fp = fingerprint(POISON)
    assert all(q.record_crash(fp) for _ in range(5))
    assert q.check(POISON) is None


def test_op_lists_and_clears_and_names_bad_input(clock):
    q = make(clock)
    fp = fingerprint(POISON)
    q.record_crash(fp)
    q.record_crash(fp)
    listed = quarantine_op(q, {"op": "quarantine"})
    assert [e["fingerprint"] for e in listed["entries"]] == [fp.id] and listed["cleared"] == []
    with pytest.raises(protocol.BadRequest, match="'action' 'drop'"):
        quarantine_op(q, {"action": "drop"})
    with pytest.raises(protocol.BadRequest, match="'fingerprint' must be a string"):
        quarantine_op(q, {"action": "clear", "fingerprint": 5})
    with pytest.raises(protocol.BadRequest, match="no quarantined fingerprint 'nope'"):
        quarantine_op(q, {"action": "clear", "fingerprint": "nope"})
    assert quarantine_op(q, {"action": "clear", "fingerprint": fp.id})["cleared"] == [fp.id]


def test_config_defaults_and_validation():
    cfg = quarantine_config(load().python3.quarantine)
    assert cfg == QuarantineConfig(enabled=True, crashes=2, window=600.0, ttl=1800.0,
                                   max_entries=1000)
    with pytest.raises(ConfigError, match="quarantine.*crashes = 0 must be >= 1"):
        load(text="python3:\n  quarantine:\n    crashes: 0\n")
    with pytest.raises(ConfigError, match="quarantine.ttl"):
        load(text="python3:\n  quarantine:\n    ttl: soon\n")
    with pytest.raises(ValueError, match="window"):
        QuarantineConfig(window=0)


# ---------------------------------------------------------------- through the chain

class CrashingStrategy(Strategy):
    """Test double: every attempt 'crashes its worker' at once."""

    name = "primary"

    def submit(self, attempt) -> None:
        attempt.fail(protocol.CRASHED, "the worker died with signal 9")


def test_chain_counts_repeats_of_one_fingerprint_once_toward_the_breaker():
    loop = Loop()
    try:
        strategy = CrashingStrategy()
        strategy.breaker = CircuitBreaker(BreakerConfig(failure_threshold=2), clock=loop.clock)
        quarantine = Quarantine(QuarantineConfig(crashes=1000), clock=loop.clock)
        chain = FallbackChain(loop, [strategy], quarantine=quarantine)
        replies: list[dict] = []

        def submit(request: dict) -> None:
            chain.submit(Call(1, pack_raw(request), 5.0,
                              lambda data: replies.append(unpack_raw(data)), loop.clock()))

        for _ in range(10):
            submit(POISON)
        assert [r["error"]["kind"] for r in replies] == ["crashed"] * 10
        assert quarantine.tracking
        assert strategy.breaker.snapshot()["consecutive_failures"] == 1
        assert str(strategy.breaker.state) == "closed"
        submit(execute("other()"))  # a second, different crashing request does count
        assert str(strategy.breaker.state) == "open"
    finally:
        loop.close()


class AlternatingStrategy(Strategy):
    """Test double: the worker is killed from outside during every other call."""

    name = "primary"

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, attempt) -> None:
        self.calls += 1
        if self.calls % 2:
            attempt.fail(protocol.CRASHED, "the worker died with signal 9")
        else:
            attempt.answer(pack_raw({"ok": True, "id": attempt.rid, "value": 7}))


def test_chain_never_quarantines_a_request_that_runs_fine_between_crashes():
    loop = Loop()
    try:
        quarantine = Quarantine(QuarantineConfig(crashes=2), clock=loop.clock)
        chain = FallbackChain(loop, [AlternatingStrategy()], quarantine=quarantine)
        replies: list[dict] = []
        for _ in range(10):
            chain.submit(Call(1, pack_raw(execute("7")), 5.0,
                              lambda data: replies.append(unpack_raw(data)), loop.clock()))
        assert [r["ok"] for r in replies] == [False, True] * 5
        assert quarantine.entries() == [] and not quarantine.tracking
    finally:
        loop.close()


REQUEST = {"v": 1, "op": "call", "target": "plant.door:unlock", "args": [4711], "id": 1,
           "token": "t"}



def test_two_sidecars_fingerprint_one_request_differently_each_stably():
    first, second = Quarantine(), Quarantine()
    a, b = first.fingerprint(REQUEST), second.fingerprint(REQUEST)
    assert a.id != b.id
    assert first.fingerprint({**REQUEST, "id": 2, "token": "x"}) == a  # stable within one
    assert len(a.id) == 32 and int(a.id, 16) >= 0  # 16 bytes, hex
    assert (a.op, a.label) == ("call", "plant.door:unlock")



def test_a_fingerprint_cannot_be_found_by_hashing_candidate_arguments():
    shown = Quarantine().fingerprint(REQUEST).id  # what health/diag would show
    body = {k: v for k, v in REQUEST.items() if k not in ("id", "token", "timeout")}
    for size in (8, 16):
        guesses = {hashlib.blake2b(pack_raw({**body, "args": [pin]}), digest_size=size).hexdigest()
                   for pin in range(10_000)}
        assert shown not in guesses



def test_the_key_is_what_makes_them_differ():
    key = b"k" * 16
    assert Quarantine(key=key).fingerprint(REQUEST) == Quarantine(key=key).fingerprint(REQUEST)



class ScriptedStrategy(Strategy):
    """Test double: each call's attempt fails with the next kind of ``kinds``, in turn."""

    name = "primary"
    MESSAGES = {protocol.CRASHED: "the worker died with signal 9",
                protocol.TIMEOUT: "the call ran past its timeout of 5s"}

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.calls = 0

    def submit(self, attempt) -> None:
        kind = self.kinds[self.calls % len(self.kinds)]
        self.calls += 1
        attempt.fail(kind, self.MESSAGES[kind])



def run_chain(kinds: list[str], calls: int) -> tuple[Quarantine, list[str]]:
    """``calls`` of REQUEST through a chain whose one strategy answers ``kinds`` in turn."""
    loop = Loop()
    try:
        quarantine = Quarantine(QuarantineConfig(crashes=2), clock=loop.clock)
        chain = FallbackChain(loop, [ScriptedStrategy(kinds)], quarantine=quarantine)
        replies: list[dict] = []
        for _ in range(calls):
            chain.submit(Call(1, pack_raw(REQUEST), 5.0,
                              lambda data: replies.append(unpack_raw(data)), loop.clock()))
        return quarantine, [r["error"]["kind"] for r in replies]
    finally:
        loop.close()



def test_a_call_that_ran_to_its_timeout_forgets_its_crashes():
    # A long job whose worker is killed from outside every other run, and otherwise runs to
    # its timeout: not a poison (a poison crashes every time it runs).
    quarantine, kinds = run_chain([protocol.CRASHED, protocol.TIMEOUT], 6)
    assert kinds == ["crashed", "timeout"] * 3
    assert quarantine.entries() == [] and not quarantine.tracking



def test_crashes_with_nothing_in_between_still_quarantine():
    # The other half of the rule: the timeout outcome is what forgets, not the passing of calls.
    quarantine, kinds = run_chain([protocol.CRASHED], 2)
    assert kinds == ["crashed"] * 2
    assert [e["label"] for e in quarantine.entries()] == ["plant.door:unlock"]
