"""Covers: sidecar.pool.call.

A call's own record: what it holds from its request, and that it is answered once.
"""

from __future__ import annotations

from bridge import protocol
from bridge.codec import unpack_raw
from sidecar.pool.call import Call

from ..pool_doubles import Sink


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


def test_answer_delivers_once_and_reports_a_second_answer_as_refused():
    sink = Sink()
    call = Call("r", b"p", 5.0, sink, 0.0)
    assert call.answer(b"first", None) is True
    assert call.answer(b"second", protocol.CRASHED) is False
    assert call.fail(protocol.TIMEOUT, "late") is False
    assert sink.replies == [b"first"] and call.outcome is None and call.done


def test_fail_builds_the_error_reply_for_this_request():
    sink = Sink()
    call = Call("req-7", b"p", 5.0, sink, 0.0)
    assert call.fail(protocol.CRASHED, "it died", worker=3) is True
    assert unpack_raw(sink.replies[0]) == {
        "id": "req-7", "ok": False, "error": {"kind": "crashed", "type": None,
                                             "message": "it died", "traceback": None,
                                             "worker": 3}}
    assert call.outcome == protocol.CRASHED


def test_a_new_call_is_unanswered_with_its_deadline():
    call = Call("r", b"p", 2.5, Sink(), 10.0)
    assert (call.accepted_at, call.deadline, call.timeout) == (10.0, 12.5, 2.5)
    assert call.timer is None and call.done is False


def test_answer_cancels_the_deadline_timer_and_survives_a_broken_sink():
    cancelled: list[bool] = []

    class Timer:
        def cancel(self) -> None:
            cancelled.append(True)

    def broken(data: bytes) -> None:
        raise RuntimeError("the front went away")

    call = Call("r", b"p", 5.0, broken, 0.0)
    call.timer = Timer()
    assert call.answer(b"x", protocol.TIMEOUT) is True  # the error is logged, not raised
    assert cancelled == [True] and call.done and call.outcome == protocol.TIMEOUT
