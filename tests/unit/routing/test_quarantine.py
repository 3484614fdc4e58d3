"""Covers: sidecar.routing.quarantine, bridge.protocol, bridge.breaker, bridge.codec,
sidecar.config.model, sidecar.config.settings, sidecar.pool.call, sidecar.routing.chain.

The poison-request quarantine as a pure policy: an injected clock, no processes, no sleeping."""

from __future__ import annotations

import hashlib

import pytest

from bridge import protocol
from bridge.breaker import BreakerConfig, CircuitBreaker
from bridge.codec import pack_raw, packb, unpack_raw
from bridge.protocol import BadRequest
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
    request_label,
)

from ..clock_double import FakeClock

KEY = b"quarantine-test-key"  # the key of every Quarantine made by make(): see fingerprint()


_keyed_fingerprint = quarantine_module.fingerprint  # bound here: count_hashing patches the module


def fingerprint(request: dict):
    """The fingerprint a Quarantine made by ``make`` gives ``request``."""
    return _keyed_fingerprint(request, KEY)



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


def test_clearing_an_unknown_fingerprint_still_tells_what_expired_on_the_way(clock):
    # clear() expires first: an `expired` event found then is published even when the id
    # asked for is unknown (KeyError), or an alert and the metrics would never hear of it.
    events: list[QuarantineEvent] = []
    q = make(clock, events, ttl=100.0)
    fp = fingerprint(POISON)
    q.record_crash(fp)
    q.record_crash(fp)
    clock.now += 100.1
    with pytest.raises(KeyError):
        q.clear("0123456789abcdef")
    assert [(e.action, e.fingerprint) for e in events] == [("quarantined", fp.id),
                                                           ("expired", fp.id)]


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


class Clocks:
    """Test double for the monotonic and the wall clock: both move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0
        self.wall = 1_700_000_000.0

    def mono(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def clocks():
    return Clocks()


def make_recorded(clocks, **config):
    events: list[QuarantineEvent] = []
    q = Quarantine(QuarantineConfig(**config), clock=clocks.mono, wall_clock=clocks.time,
                   key=KEY)
    q.subscribe(events.append)
    return q, events


def ex(code: str = "boom()", **extra):
    return {"op": "execute", "code": code, **extra}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("crashes", 0, "quarantine crashes must be a whole number >= 1, got 0"),
    ("crashes", 1.5, "quarantine crashes must be a whole number >= 1, got 1.5"),
    ("crashes", True, "quarantine crashes must be a whole number >= 1, got True"),
    ("max_entries", 0, "quarantine max_entries must be a whole number >= 1, got 0"),
    ("window", 0, "quarantine window must be a positive number of seconds, got 0"),
    ("ttl", -1.0, "quarantine ttl must be a positive number of seconds, got -1.0"),
])
def test_config_refusals_name_the_knob(field, value, message):
    with pytest.raises(ValueError) as info:
        QuarantineConfig(**{field: value})
    assert str(info.value) == message


def test_config_defaults():
    cfg = QuarantineConfig()
    assert (cfg.enabled, cfg.crashes, cfg.window, cfg.ttl, cfg.max_entries) == (
        True, 2, 600.0, 1800.0, 1000)
    QuarantineConfig(crashes=1, max_entries=1, window=0.001, ttl=0.001)


def test_labels_are_the_first_line_of_code_or_the_target_shortened():
    assert request_label(ex("  \n  first line\nsecond")) == ("execute", "first line")
    assert request_label(ex("x" * 500)) == ("execute", "x" * 120)
    assert request_label({"op": "execute", "code": 5}) == ("execute", "")
    assert request_label({"op": "call", "target": "m:" + "f" * 500}) == (
        "call", ("m:" + "f" * 500)[:240])
    assert request_label({"op": "call"}) == ("call", "None")
    assert request_label({}) == ("None", "")


def test_fingerprints_canonicalise_two_levels_of_maps_only():
    a = fingerprint({"op": "execute", "code": "c", "vars": {"x": 1, "y": {"p": 1, "q": 2}}})
    b = fingerprint({"vars": {"y": {"p": 1, "q": 2}, "x": 1}, "code": "c", "op": "execute"})
    assert a == b and len(a.id) == 32 and (a.op, a.label) == ("execute", "c")
    deep = fingerprint({"op": "execute", "code": "c", "vars": {"y": {"q": 2, "p": 1}, "x": 1}})
    assert deep.id != a.id  # below two levels the order is the client's, kept as sent
    assert fingerprint(ex(id=1, token="t", timeout=3)) == fingerprint(ex(id=2))
    assert fingerprint(ex(pool="a")) != fingerprint(ex(pool="b"))


def test_the_crash_that_quarantines_publishes_the_count_and_the_window(clocks):
    q, events = make_recorded(clocks, crashes=3, window=60.0, ttl=30.0)
    p = fingerprint(ex())
    assert q.record_crash(p) is True
    clocks.advance(1)
    assert q.record_crash(p) is False and q.check(ex()) is None
    clocks.advance(1)
    assert q.record_crash(p) is False
    [event] = events
    assert event == QuarantineEvent("quarantined", p.id, "execute", "boom()", 3, 102.0,
                                    "3 worker crashes within 60s")
    assert q.crashes_not_counted == 2
    entry = q.check(ex(id=9))
    assert entry == {"fingerprint": p.id, "op": "execute", "label": "boom()", "crashes": 3,
                     "since": clocks.wall, "expires": clocks.wall + 30.0, "expires_in": 30.0}
    assert q.refused == 1


def test_a_crash_exactly_one_window_later_starts_afresh(clocks):
    q, events = make_recorded(clocks, crashes=2, window=10.0)
    p = fingerprint(ex())
    assert q.record_crash(p) is True
    clocks.advance(10.0)  # the first crash leaves the window at exactly `window`
    assert q.record_crash(p) is True and events == [] and q.check(ex()) is None
    clocks.advance(9.99)
    assert q.record_crash(p) is False and [e.action for e in events] == ["quarantined"]


def test_accepted_before_the_last_crash_is_the_same_incident(clocks):
    q, events = make_recorded(clocks, crashes=2)
    p = fingerprint(ex())
    admitted = clocks.now
    clocks.advance(1)
    assert q.record_crash(p, accepted_at=admitted) is True
    assert q.record_crash(p, accepted_at=admitted) is False  # admitted before that crash
    assert events == [] and q.crashes_not_counted == 1
    assert q.record_crash(p, accepted_at=clocks.now) is False  # sent after it: evidence
    assert [e.action for e in events] == ["quarantined"]


def test_ttl_expiry_at_exactly_the_ttl_with_its_reason(clocks):
    q, events = make_recorded(clocks, crashes=1, ttl=50.0)
    p = fingerprint(ex())
    q.record_crash(p)
    clocks.advance(49.99)
    assert q.check(ex()) is not None
    clocks.advance(0.01)
    q.sweep()
    assert [(e.action, e.reason, e.crashes) for e in events] == [
        ("quarantined", "1 worker crashes within 600s", 1),
        ("expired", "quarantined for 50s", 1)]
    assert q.check(ex()) is None and q.entries() == []


def test_the_next_expiry_follows_the_earliest_entry(clocks):
    q, events = make_recorded(clocks, crashes=1, ttl=10.0)
    q.record_crash(fingerprint(ex("a()")))
    clocks.advance(5)
    q.record_crash(fingerprint(ex("b()")))
    clocks.advance(5)
    q.sweep()
    assert [e.label for e in events if e.action == "expired"] == ["a()"]
    assert q.check(ex("b()")) is not None
    clocks.advance(5)
    q.sweep()
    assert [e.label for e in events if e.action == "expired"] == ["a()", "b()"]


def test_crash_records_are_forgotten_when_their_last_crash_leaves_the_window(clocks):
    q, events = make_recorded(clocks, crashes=3, window=10.0)
    q.record_crash(fingerprint(ex("old()")))
    clocks.advance(5)
    q.record_crash(fingerprint(ex("new()")))
    assert q.snapshot()["tracked"] == 2 and q.tracking
    clocks.advance(5)
    q.sweep()
    assert q.snapshot()["tracked"] == 1 and events == []  # forgetting is not published
    clocks.advance(5)
    q.sweep()
    assert q.snapshot()["tracked"] == 0 and not q.tracking


def test_a_run_forgets_only_crash_records_of_that_request(clocks):
    q, events = make_recorded(clocks, crashes=2)
    q.record_crash(fingerprint(ex("a()")))
    q.record_crash(fingerprint(ex("b()", vars={"x": 1})))
    q.record_run(ex("b()", vars={"x": 2}))  # same label, other arguments: not this one
    assert q.snapshot()["tracked"] == 2
    q.record_run(ex("b()", vars={"x": 1}))
    assert q.snapshot()["tracked"] == 1
    q.record_run(ex("c()"))
    assert q.snapshot()["tracked"] == 1
    q.record_crash(fingerprint(ex("a()")))  # quarantined now: a run does not lift it
    q.record_run(ex("a()"))
    assert q.check(ex("a()")) is not None and [e.action for e in events] == ["quarantined"]


def test_disabled_holds_nothing_and_counts_everything(clocks):
    q, events = make_recorded(clocks, enabled=False, crashes=1)
    p = fingerprint(ex())
    assert all(q.record_crash(p) for _ in range(3))
    assert events == [] and q.check(ex()) is None and q.snapshot()["enabled"] is False


def test_clear_one_lifts_it_and_publishes_why(clocks):
    q, events = make_recorded(clocks, crashes=1)
    a, b = fingerprint(ex("a()")), fingerprint(ex("b()"))
    q.record_crash(a)
    q.record_crash(b)
    assert q.clear(a.id) == [a.id]
    assert events[-1] == QuarantineEvent("cleared", a.id, "execute", "a()", 1, clocks.now,
                                         "cleared by an operator")
    assert q.check(ex("a()")) is None and q.check(ex("b()")) is not None
    with pytest.raises(KeyError):
        q.clear(a.id)  # no longer quarantined
    with pytest.raises(KeyError):
        q.clear("0" * 16)


def test_clear_all_lifts_every_entry_and_forgets_every_crash(clocks):
    q, events = make_recorded(clocks, crashes=2)
    held = fingerprint(ex("a()"))
    q.record_crash(held)
    q.record_crash(held)
    q.record_crash(fingerprint(ex("b()")))  # a crash record only
    with pytest.raises(KeyError):
        q.clear(fingerprint(ex("b()")).id)  # not quarantined: not clearable alone
    assert q.clear() == [held.id]
    assert [e.action for e in events] == ["quarantined", "cleared"]
    assert q.snapshot()["tracked"] == 0 and q.entries() == []


def test_entries_are_listed_oldest_first_with_wall_clock_times(clocks):
    q, _ = make_recorded(clocks, crashes=1, ttl=100.0)
    q.record_crash(fingerprint(ex("first()")))
    start = clocks.wall
    clocks.advance(10)
    q.record_crash(fingerprint(ex("second()")))
    clocks.advance(2.5)
    first, second = q.entries()
    assert (first["label"], second["label"]) == ("first()", "second()")
    assert first["since"] == start and first["expires"] == start + 100.0
    assert first["expires_in"] == 87.5 and second["expires_in"] == 97.5


def test_the_snapshot_carries_the_settings_and_the_counters(clocks):
    q, _ = make_recorded(clocks, crashes=1, window=5.0, ttl=7.0, max_entries=9)
    q.record_crash(fingerprint(ex()))
    q.check(ex())
    snap = q.snapshot()
    entries = snap.pop("entries")
    assert snap == {"enabled": True, "crashes": 1, "window": 5.0, "ttl": 7.0,
                    "max_entries": 9, "tracked": 1, "refused": 1, "crashes_not_counted": 0}
    assert [e["label"] for e in entries] == ["boom()"]


def test_the_bound_evicts_crash_records_first_then_the_oldest_entry(clocks):
    q, events = make_recorded(clocks, crashes=2, max_entries=2)
    held = fingerprint(ex("held()"))
    q.record_crash(held)
    q.record_crash(held)
    q.record_crash(fingerprint(ex("r1()")))
    q.record_crash(fingerprint(ex("r2()")))  # over the bound: r1 (a crash record) goes, quietly
    assert q.snapshot()["tracked"] == 2 and [e.action for e in events] == ["quarantined"]
    q2, events2 = make_recorded(clocks, crashes=1, max_entries=1)
    q2.record_crash(fingerprint(ex("x()")))
    q2.record_crash(fingerprint(ex("y()")))  # only entries left: the oldest is evicted
    assert [(e.action, e.label) for e in events2] == [
        ("quarantined", "x()"), ("quarantined", "y()"), ("evicted", "x()")]
    assert events2[-1].reason == ("more than 1 fingerprints "
                                  "(python3.quarantine.max-entries)")
    assert q2.check(ex("y()")) is not None and q2.check(ex("x()")) is None


def test_the_refusal_reads_as_advice():
    entry = {"fingerprint": "abcd", "op": "execute", "label": "boom()", "crashes": 3,
             "since": 1.0, "expires": 2.0, "expires_in": 41.6}
    message, details = refusal(entry)
    assert message == ("this request crashed its worker 3 times and is quarantined for another "
                       "42s without being run (fingerprint abcd, execute 'boom()'); fix the code "
                       "or its arguments, or ask an operator: `py3sidecar quarantine clear "
                       "abcd`")
    assert details == {**entry, "retry_after": 41.6}


def test_the_op_lists_clears_and_refuses_bad_input_exactly(clocks):
    q, _ = make_recorded(clocks, crashes=1)
    p = fingerprint(ex())
    q.record_crash(p)
    listed = quarantine_op(q, {"op": "quarantine"})
    assert listed["cleared"] == [] and [e["fingerprint"] for e in listed["entries"]] == [p.id]
    assert quarantine_op(q, {"action": "list", "fingerprint": p.id})["cleared"] == []
    with pytest.raises(BadRequest) as info:
        quarantine_op(q, {"action": "drop"})
    assert str(info.value) == "unknown quarantine 'action' 'drop'; expected list or clear"
    with pytest.raises(BadRequest) as info:
        quarantine_op(q, {"action": "clear", "fingerprint": 5})
    assert str(info.value) == "quarantine 'fingerprint' must be a string, got int"
    with pytest.raises(BadRequest) as info:
        quarantine_op(q, {"action": "clear", "fingerprint": "nope"})
    assert str(info.value) == ("no quarantined fingerprint 'nope'; see "
                               "`py3sidecar quarantine list`")
    cleared = quarantine_op(q, {"action": "clear", "fingerprint": p.id})
    assert cleared["cleared"] == [p.id] and cleared["entries"] == []
    q.record_crash(p)
    assert quarantine_op(q, {"action": "clear", "fingerprint": ""})["cleared"] == [p.id]


def test_subscribers_hear_every_event_in_order(clocks):
    q, events = make_recorded(clocks, crashes=1)
    second: list[str] = []
    q.subscribe(lambda e: second.append(e.action))
    q.record_crash(fingerprint(ex()))
    q.clear()
    assert [e.action for e in events] == second == ["quarantined", "cleared"]


def count_hashing(monkeypatch) -> list[int]:
    import sidecar.routing.quarantine as quarantine_module

    calls: list[int] = []
    real = quarantine_module.fingerprint

    def counting(request, key):
        calls.append(1)
        return real(request, key)

    monkeypatch.setattr(quarantine_module, "fingerprint", counting)
    return calls


def test_once_nothing_is_quarantined_or_tracked_nothing_is_hashed(clocks, monkeypatch):
    q, _ = make_recorded(clocks, crashes=1)
    p = fingerprint(ex())
    q.record_crash(p)
    q.clear(p.id)
    hashed = count_hashing(monkeypatch)
    assert q.check(ex()) is None and hashed == []  # nothing held: no hashing
    q.record_crash(fingerprint(ex("other()")))
    q.clear()
    q.record_run(ex("other()"))  # nothing tracked: no hashing either
    assert hashed == [] and not q.tracking


def test_a_run_with_an_untracked_label_is_not_hashed(clocks, monkeypatch):
    q, _ = make_recorded(clocks, crashes=2)
    q.record_crash(fingerprint(ex("a()")))
    q.record_run(ex("a()"))  # forgotten: its label is no longer tracked
    q.record_crash(fingerprint(ex("b()")))
    hashed = count_hashing(monkeypatch)
    q.record_run(ex("a()"))
    assert hashed == []


def test_two_entries_of_one_label_are_held_until_both_are_gone(clocks):
    q, _ = make_recorded(clocks, crashes=1)
    one, two = ex("same()", vars={"x": 1}), ex("same()", vars={"x": 2})
    q.record_crash(fingerprint(one))
    q.record_crash(fingerprint(two))
    q.clear(fingerprint(one).id)
    assert q.check(one) is None and q.check(two) is not None
    q.record_crash(fingerprint(ex("c()", vars={"x": 1})))
    q.record_crash(fingerprint(ex("c()", vars={"x": 2})))  # two crash records of one label
    q2, _ = make_recorded(clocks, crashes=2)
    q2.record_crash(fingerprint(ex("c()", vars={"x": 1})))
    q2.record_crash(fingerprint(ex("c()", vars={"x": 2})))
    q2.record_run(ex("c()", vars={"x": 1}))
    q2.record_crash(fingerprint(ex("c()", vars={"x": 2})))  # the other still tracked
    assert q2.check(ex("c()", vars={"x": 2})) is not None


@pytest.mark.parametrize("entry_point", ["check", "entries", "clear", "record_crash", "sweep"])
def test_every_entry_point_publishes_what_expired_meanwhile(clocks, entry_point):
    q, events = make_recorded(clocks, crashes=1, ttl=5.0)
    q.record_crash(fingerprint(ex("old()")))
    clocks.advance(5.0)
    if entry_point == "check":
        q.check(ex("old()"))
    elif entry_point == "entries":
        q.entries()
    elif entry_point == "clear":
        assert q.clear() == []  # expired just now: nothing left to clear
    elif entry_point == "record_crash":
        q.record_crash(fingerprint(ex("new()")))
    else:
        q.sweep()
    expired = [e for e in events if e.action == "expired"]
    assert [(e.label, e.at) for e in expired] == [("old()", clocks.now)]


def test_an_eviction_event_carries_the_time(clocks):
    q, events = make_recorded(clocks, crashes=1, max_entries=1)
    q.record_crash(fingerprint(ex("x()")))
    clocks.advance(3)
    q.record_crash(fingerprint(ex("y()")))
    assert events[-1].action == "evicted" and events[-1].at == clocks.now


def test_clear_of_an_unknown_fingerprint_names_it():
    q = Quarantine(QuarantineConfig())
    with pytest.raises(KeyError) as info:
        q.clear("feedface")
    assert info.value.args == ("feedface",)


def test_entry_times_are_rounded_to_the_millisecond(clocks):
    clocks.wall = 1_700_000_000.1234567
    clocks.now = 100.0001234
    q, _ = make_recorded(clocks, crashes=1, ttl=10.0)
    q.record_crash(fingerprint(ex()))
    clocks.advance(0.2224)
    [entry] = q.entries()
    assert entry["since"] == round(1_700_000_000.1234567, 3)
    assert entry["expires"] == round(1_700_000_000.1234567 + 10.0, 3)
    assert entry["expires_in"] == 9.778


def test_an_entry_about_to_expire_says_so(clocks):
    q, _ = make_recorded(clocks, crashes=1, ttl=10.0)
    q.record_crash(fingerprint(ex()))
    clocks.advance(9.5)
    assert q.entries()[0]["expires_in"] == 0.5


def test_entries_are_ordered_by_when_they_were_quarantined_not_last_crashed(clocks):
    clocks.now = 0.0
    q, _ = make_recorded(clocks, crashes=1, ttl=100.0)
    q.record_crash(fingerprint(ex("a()")))
    clocks.now = 0.5
    q.record_crash(fingerprint(ex("b()")))
    clocks.now = 0.7
    q.record_crash(fingerprint(ex("a()")))  # a crashes again: last crashed, but held first
    assert [e["label"] for e in q.entries()] == ["a()", "b()"]


def test_a_crash_exactly_one_window_old_leaves_the_count(clocks):
    q, events = make_recorded(clocks, crashes=3, window=10.0)
    p = fingerprint(ex())
    q.record_crash(p)
    clocks.advance(5)
    q.record_crash(p)
    clocks.advance(5)  # the first is now exactly one window old: it no longer counts
    q.record_crash(p)
    assert events == [] and q.check(ex()) is None


def test_in_flight_repeats_add_up_as_not_counted(clocks):
    q, _ = make_recorded(clocks, crashes=5)
    p = fingerprint(ex())
    admitted = clocks.now
    clocks.advance(1)
    q.record_crash(p, accepted_at=admitted)
    q.record_crash(p, accepted_at=admitted)
    q.record_crash(p, accepted_at=admitted)
    assert q.crashes_not_counted == 2


def test_maps_with_keys_of_mixed_types_fingerprint_in_a_stable_order():
    a = fingerprint({"op": "call", "target": "m:f", "kwargs": {"b": 1}, "args": [1],
                     "vars": {1: "one", "two": 2}})
    b = fingerprint({"vars": {"two": 2, 1: "one"}, "args": [1], "kwargs": {"b": 1},
                     "target": "m:f", "op": "call"})
    assert a == b


def test_a_run_of_one_request_keeps_the_label_of_another_tracked(clocks):
    q, events = make_recorded(clocks, crashes=2)
    first, second = ex("same()", vars={"x": 1}), ex("same()", vars={"x": 2})
    q.record_crash(fingerprint(first))
    q.record_crash(fingerprint(second))
    q.record_run(first)
    q.record_run(second)  # ran fine too: its crash is forgotten
    q.record_crash(fingerprint(second))
    assert events == [] and q.check(second) is None
