"""Covers: bridge.zmq_server, bridge.py4j_server, bridge.preauth, bridge.protocol, bridge.codec.

Structured fuzzing of a real `py3sidecar serve` through both fronts.

hypothesis draws envelopes (every member, right and wrong types, authenticated or not) holding
every extension type (valid and malformed), packs them and sometimes mutates the bytes; each
frame goes over ZeroMQ or Py4J, one at a time. Asserted per frame: exactly one reply, a
well-formed envelope, never `internal` or `crashed`. Asserted over the run: no worker crashed,
the sidecar's descriptors and threads did not grow, its RSS stayed bounded. Bounded for
`make test` (a few hundred frames per front); `make fuzz` sends a million (run_fuzz.py).
"""
from __future__ import annotations

import os

import pytest
import zmq
from hypothesis import HealthCheck, given, settings

from sidecar.testing import SidecarProcess, wait_until

from .frames import Py4JPeer, Tally, envelopes, mutate, mutations, pack, resources

EXAMPLES = {"zmq": 500, "py4j": 250}
RSS_GROWTH_LIMIT = 64 << 20  # generous: a leak per frame would pass it within the run


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    proc = SidecarProcess({"pool": {"initial-size": 2, "max-size": 2},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("fuzz")))
    proc.start()
    yield proc
    proc.stop()


class ZmqSender:
    def __init__(self, endpoint: str, proc: SidecarProcess) -> None:
        self.sock = proc.authenticate(zmq.Context.instance().socket(zmq.DEALER))
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def round_trip(self, payload: bytes) -> bytes:
        self.sock.send(payload)
        assert self.sock.poll(15_000), "no reply within 15 s"
        reply = self.sock.recv()
        return reply

    def extra_reply(self) -> bool:
        return bool(self.sock.poll(0))

    def close(self) -> None:
        self.sock.close()


def at_full_strength(probe) -> None:
    """Both members idle and the warm spare ready: the descriptors of a pool at rest."""
    def rested():
        workers = probe.health()["pool"]["workers"]
        idle = [w["role"] for w in workers if w["state"] == "idle"]
        return len(idle) == len(workers) and idle.count("member") == 2 and "spare" in idle
    wait_until(rested, 20, message="the pool at rest (2 idle members and a ready spare)")


def _settled(pid: int, before: dict[str, int]) -> bool:
    now = resources(pid)
    return now["fds"] <= before["fds"] and now["threads"] <= before["threads"]


def descriptors(pid: int) -> list[str]:
    """What each open descriptor of `pid` points at, for the message of a failed assertion."""
    base = f"/proc/{pid}/fd"
    out = []
    for name in sorted(os.listdir(base), key=int):
        try:
            out.append(f"{name}->{os.readlink(os.path.join(base, name))}")
        except OSError:
            pass
    return out


def _crashes(probe) -> int:
    return probe.health()["pool"]["counters"].get("crashes", 0)


@pytest.mark.parametrize("front", ["zmq", "py4j"])
def test_fuzzed_frames_get_one_well_formed_reply_and_never_internal(fuzzed, front):
    if front == "zmq":
        sender = ZmqSender(fuzzed.endpoint, fuzzed)
        send, extra = sender.round_trip, sender.extra_reply
    else:
        peer = Py4JPeer(fuzzed.py4j_port, fuzzed.token)
        sender, send, extra = peer, peer.apply, (lambda: False)
    send(pack({"op": "ping", "token": fuzzed.token, "v": 1}, fuzzed.token))  # connected
    probe = fuzzed.client(timeout=10.0)  # one connection for every health look, made now
    crashes_before = _crashes(probe)
    at_full_strength(probe)  # each ready worker holds its /proc files open: count them all
    before = resources(fuzzed.proc.pid)
    fds_before = descriptors(fuzzed.proc.pid)
    tally = Tally()

    @fuzz_settings(EXAMPLES[front])
    @given(envelope=envelopes(), mutation=mutations())
    def one_frame(envelope, mutation):
        payload = mutate(pack(envelope, fuzzed.token), *mutation)
        tally.frames += 1
        intact = mutation[0] == "none"
        rid = envelope.get("id") if intact and isinstance(envelope.get("id"), (int, str)) else None
        seen = len(tally.violations)
        tally.check(send(payload), rid)
        assert not extra(), "two replies to one request"
        assert len(tally.violations) == seen, tally.violations[seen:]

    try:
        one_frame()
        # Every call the fuzz started has finished: the pool is idle again, nothing pending.
        wait_until(lambda: probe.health()["pool"]["workers_by_state"]["busy"] == 0, 15,
                   message="workers idle after the fuzz")
        at_full_strength(probe)
        # A descriptor the fuzz leaked stays open; one the sidecar is still closing (a peer the
        # transport dropped, a worker being replaced) is gone within the deadline.
        try:
            settled = wait_until(lambda: _settled(fuzzed.proc.pid, before), 10)
        except TimeoutError:
            settled = False
        after = resources(fuzzed.proc.pid)
    finally:
        sender.close()
    print(f"\n{front}: {tally.frames} frames, {tally.replies} replies, kinds "
          f"{dict(tally.kinds)}, sidecar {before} -> {after}")
    assert tally.replies == tally.frames
    assert _crashes(probe) == crashes_before, "a fuzzed frame crashed a worker"
    assert settled and after["fds"] <= before["fds"], (
        before, after, sorted(set(descriptors(fuzzed.proc.pid)) - set(fds_before)))
    assert after["threads"] <= before["threads"], (before, after)
    assert after["rss"] - before["rss"] < RSS_GROWTH_LIMIT, (before, after)
