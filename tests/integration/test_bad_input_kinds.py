"""Covers: bridge.protocol, bridge.zmq_server, sidecar.service, sidecar.worker.main.

`internal` means a bug of ours: every op's bad input is `bad_request`.

A table, not forty hand-written copies: for every op and every envelope member that op reads,
each value of a wrong type is sent (authenticated, raw bytes over ZeroMQ to the shared real
sidecar) and must get exactly one `bad_request` reply that names the member. `diag` with
`command: [1]` answered `internal` (TypeError) on c66ceb3.
"""
from __future__ import annotations

import itertools

import msgpack
import pytest
import zmq

from bridge import codec

EXT = msgpack.ExtType(5, b"x")
NOT_STRINGS = [[1], {"a": 1}, b"x", 1, 1.5, True, EXT]
MEMBERS = {  # member -> values of a wrong type (or out of range)
    "id": [[1], {"a": 1}, b"x", 1.5, EXT],
    "v": [[1], {"a": 1}, "1", 2, b"x"],
    "op": NOT_STRINGS + ["nope"],
    "timeout": [[1], {"a": 1}, "1", -1, 0, 10 ** 9, True, b"x", EXT],
    "code": NOT_STRINGS,
    "vars": [[1], "x", 1, {1: 2}, {b"k": 1}],
    "target": NOT_STRINGS + ["no_colon"],
    "args": ["x", 1, {"a": 1}, b"x"],
    "kwargs": [[1], "x", 1, {1: 2}],
    "command": [[1], {"a": 1}, b"x", 1, 1.5, True, EXT, "no-such-command"],
    "name": [[1], {"a": 1}, b"x", 1, EXT, "no-such-breaker"],
    "pool": [[1], {"a": 1}, b"x", 1, 1.5, True, EXT, "no-such-pool"],
}
COMMON = ("id", "v", "op", "timeout")
READS = {"ping": COMMON, "health": COMMON, "execute": (*COMMON, "code", "vars", "pool"),
         "call": (*COMMON, "target", "args", "kwargs", "pool"), "diag": (*COMMON, "command"),
         "breaker": (*COMMON, "command", "name")}
VALID = {"execute": {"code": "1"}, "call": {"target": "math:floor", "args": [1.5]},
         "diag": {"command": "help"}, "breaker": {"command": "status"}}
CASES = [(op, member, value) for op, members in READS.items() for member in members
         for value in MEMBERS[member]]


@pytest.fixture(scope="module")
def raw(sidecar):
    sock = sidecar.authenticate(zmq.Context.instance().socket(zmq.DEALER))
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(sidecar.endpoint)
    counter = itertools.count(1)

    def send(request: dict) -> dict:
        envelope = {"v": 1, "id": next(counter), "token": sidecar.token, **request}
        sock.send(codec.packb(envelope))
        assert sock.poll(10_000), f"no reply to {request!r} within 10 s"
        reply = codec.unpack_raw(sock.recv())
        assert not sock.poll(0), "more than one reply to one request"
        return reply

    yield send
    sock.close()


@pytest.mark.parametrize("op", sorted(READS))
def test_valid_request_of_every_op_is_answered(raw, op):
    assert raw({"op": op, **VALID.get(op, {})})["ok"] is True


@pytest.mark.parametrize("op, member, value", CASES,
                         ids=[f"{op}-{m}-{v!r}"[:60] for op, m, v in CASES])
def test_wrong_member_is_bad_request_naming_it(raw, op, member, value):
    request = {"op": op, **VALID.get(op, {}), member: value}
    reply = raw(request)
    assert reply["ok"] is False, (request, reply)
    error = reply["error"]
    assert error["kind"] == "bad_request", (request, error)
    message = error["message"]
    assert f"'{member}'" in message or repr(value) in message, (request, message)
