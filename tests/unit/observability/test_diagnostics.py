"""Covers: sidecar.observability.diagnostics, bridge.codec, sidecar.pool.call.

Pieces of sidecar/observability/diagnostics.py that need no sidecar: gather's deadline and
shutdown, the history ring, reading the worker id from an encoded reply."""

from __future__ import annotations

from bridge.codec import pack_raw, splice_success
from sidecar.observability.diagnostics import CallHistory, first_line, gather, reply_worker
from sidecar.pool.call import Call


class TimerDouble:
    def __init__(self, callback) -> None:
        self.callback, self.cancelled = callback, False

    def cancel(self) -> None:
        self.cancelled = True


class LoopDouble:
    """Test double for sidecar.loop.Loop: timers fire when the test says so."""

    def __init__(self) -> None:
        self.timers: list[TimerDouble] = []

    def call_later(self, delay, callback) -> TimerDouble:
        self.timers.append(TimerDouble(callback))
        return self.timers[-1]

    def fire(self) -> None:
        for timer in self.timers:
            if not timer.cancelled:
                timer.callback()


def test_gather_completes_when_every_part_answered() -> None:
    loop, answers, got = LoopDouble(), {}, []
    pending = gather(loop, ["a", "b"], lambda k, done: answers.setdefault(k, done),
                     lambda results: dict(results), 3.0)
    pending.then(got.append)
    answers["a"](1)
    assert not pending.done
    answers["b"](2)
    assert got == [{"a": 1, "b": 2}] and loop.timers[0].cancelled


def test_gather_answers_with_what_arrived_at_its_deadline_or_at_shutdown() -> None:
    loop, answers, unsettled = LoopDouble(), {}, set()
    late = gather(loop, ["a", "b"], lambda k, done: answers.setdefault(k, done),
                  lambda results: sorted(results), 3.0, unsettled)
    answers["a"](1)
    loop.fire()
    assert late.done and late.value == ["a"] and not unsettled
    answers["b"](2)                 # too late: the answer stands
    assert late.value == ["a"]
    stuck = gather(loop, ["x"], lambda k, done: None, lambda results: "partial", 3.0, unsettled)
    assert unsettled
    for settle in list(unsettled):  # what Diagnostics.close does at shutdown
        settle()
    assert stuck.value == "partial" and not unsettled


def test_history_keeps_the_first_line_and_never_the_arguments() -> None:
    now = [10.0]
    history = CallHistory(lambda: now[0], size=3)
    for i in range(5):
        call = Call(i, b"", 1.0, lambda data: None, now[0])
        history.track({"op": "call", "target": "m:f", "args": [f"secret{i}"]}, call)
        now[0] += 0.5
        worker_frame = pack_raw({"ok": True, "ms": 1.0, "cpu": 1.0, "value": i, "stdout": "",
                                 "stderr": ""})
        spliced = splice_success(worker_frame, i, 200 + i)
        assert spliced is not None
        call.answer(spliced[0])
    rows = history.last(10)
    assert len(rows) == 3 and [r["worker"] for r in rows] == [202, 203, 204]
    assert all(r["duration_ms"] == 500.0 and r["outcome"] == "ok" for r in rows)
    assert "secret" not in repr(list(history.calls))
    assert first_line("\n\n   import os  \nos.getpid()") == "import os"
    assert first_line("x" * 200).endswith("...") and len(first_line("x" * 200)) == 80


def test_worker_id_from_error_replies_and_unknown_shapes() -> None:
    assert reply_worker(pack_raw({"id": 1, "ok": False, "error": {"kind": "user"},
                                  "worker": 70000}), "user") == 70000
    assert reply_worker(pack_raw({"id": 1, "ok": True, "value": 1}), None) is None
    assert reply_worker(b"\xc1junk", "user") is None
