"""The quarantine's fingerprint is keyed per sidecar, and a call that ran to its `timeout`
forgets its crashes as a value or a `user` error does (issue 19, smaller findings). Injected
clock and test-double strategies, as in test_quarantine_policy.py; no processes, no sleeping."""

from __future__ import annotations

import hashlib

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.routing.chain import FallbackChain, Strategy
from sidecar.routing.quarantine import Quarantine, QuarantineConfig

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
