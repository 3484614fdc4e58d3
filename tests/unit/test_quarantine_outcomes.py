"""The quarantine's fingerprint is keyed per sidecar, and a call that ran to its `timeout`
forgets its crashes as a value or a `user` error does (issue 19, smaller findings). Injected
clock and test-double strategies, as in test_quarantine_policy.py; no processes, no sleeping."""

from __future__ import annotations

import hashlib

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.call import Call
from sidecar.fallback import FallbackChain, Strategy
from sidecar.loop import Loop
from sidecar.quarantine import Quarantine, QuarantineConfig

# A low-entropy argument: anyone who sees an unkeyed hash can try all 10 000 PINs.
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


class CrashThenTimeoutStrategy(Strategy):
    """Test double: every other call's worker is killed from outside; the others run to their
    timeout (the request is a long job, not a poison)."""

    name = "primary"

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, attempt) -> None:
        self.calls += 1
        if self.calls % 2:
            attempt.fail(protocol.CRASHED, "the worker died with signal 9")
        else:
            attempt.fail(protocol.TIMEOUT, "the call ran past its timeout of 5s")


def test_a_call_that_ran_to_its_timeout_forgets_its_crashes():
    loop = Loop()
    try:
        quarantine = Quarantine(QuarantineConfig(crashes=2), clock=loop.clock)
        chain = FallbackChain(loop, [CrashThenTimeoutStrategy()], quarantine=quarantine)
        replies: list[dict] = []
        for _ in range(6):
            chain.submit(Call(1, pack_raw(REQUEST), 5.0,
                              lambda data: replies.append(unpack_raw(data)), loop.clock()))
        assert [r["error"]["kind"] for r in replies] == ["crashed", "timeout"] * 3
        assert quarantine.entries() == [] and not quarantine.tracking
    finally:
        loop.close()


def test_crashes_with_nothing_in_between_still_quarantine():
    # The other half of the rule: the timeout outcome is what forgets, not the passing of calls.
    loop = Loop()
    try:
        quarantine = Quarantine(QuarantineConfig(crashes=2), clock=loop.clock)
        strategy = CrashThenTimeoutStrategy()
        strategy.calls = 0
        chain = FallbackChain(loop, [strategy], quarantine=quarantine)
        for _ in range(2):
            strategy.calls = 0  # crash every time
            chain.submit(Call(1, pack_raw(REQUEST), 5.0, lambda data: None, loop.clock()))
        assert [e["label"] for e in quarantine.entries()] == ["plant.door:unlock"]
    finally:
        loop.close()
