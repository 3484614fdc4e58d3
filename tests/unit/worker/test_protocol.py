"""Covers: sidecar.worker.protocol, bridge.codec.

The worker protocol's messages as both ends see them: the prefix the pool tests each frame
against is the start of ``left_behind`` as the worker encodes it, and of nothing a worker
replies; the ready message is what the pool's ``on_ready`` reads.
"""

from __future__ import annotations

import pytest

from bridge import codec
from bridge.codec import unpack_raw
from sidecar.worker import protocol


@pytest.mark.parametrize("reasons", [[], ["a thread"], ["2 children"] * 40])
def test_left_behind_as_the_worker_writes_it_starts_with_the_prefix(reasons):
    frame = codec.packb(protocol.left_behind(reasons))
    assert frame.startswith(protocol.LEFT_BEHIND_PREFIX)
    assert unpack_raw(frame) == {"op": "left_behind", "reasons": reasons}


@pytest.mark.parametrize("message", [
    {"ok": True, "value": "left_behind"},
    {"op": "ready", "pid": 1, "preload_errors": []},
    {"ok": False, "error": {"kind": "user", "message": "left_behind"}},
    {"op": "left_behindX", "reasons": []},
])
def test_nothing_else_a_worker_writes_starts_with_it(message):
    assert not codec.packb(message).startswith(protocol.LEFT_BEHIND_PREFIX)


def test_the_ready_message_round_trips_with_its_op():
    message = unpack_raw(codec.packb(protocol.ready(4242, ["numpy: No module named numpy"])))
    assert message["op"] == protocol.READY == "ready"
    assert message["pid"] == 4242 and message["preload_errors"] == ["numpy: No module named numpy"]
