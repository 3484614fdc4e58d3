"""Covers: sidecar.pool.call.

A call's own record: what it holds from its request, and that it is answered once.
"""

from __future__ import annotations

from bridge.codec import unpack_raw
from sidecar.pool.call import Call


def test_answered_exactly_once_with_its_outcome_set_before_the_sink():
    seen = []
    call = Call("r1", b"payload", 5.0, lambda data: seen.append((data, call.outcome)), now=10.0)
    assert call.deadline == 15.0 and not call.done
    assert call.answer(b"first", None)
    assert not call.answer(b"second", "timeout")
    assert not call.fail("crashed", "too late")
    assert seen == [(b"first", None)] and call.done


def test_fail_builds_an_error_reply_of_its_kind():
    seen = []
    call = Call("r2", b"", 1.0, seen.append, now=0.0)
    assert call.fail("timeout", "took too long", limit=1.0)
    reply = unpack_raw(seen[0])
    assert call.outcome == "timeout" and reply["ok"] is False
    assert reply["error"]["kind"] == "timeout" and "took too long" in reply["error"]["message"]


def test_a_sink_that_raises_does_not_escape():
    def broken(data: bytes) -> None:
        raise RuntimeError("front gone")

    call = Call("r3", b"", 1.0, broken, now=0.0)
    assert call.answer(b"x") and call.done
