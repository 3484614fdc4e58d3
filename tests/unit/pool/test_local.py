"""Covers: sidecar.pool.local, bridge.codec, sidecar.pool.call, sidecar.supervision.score.

How the pool forwards a worker's reply (Pool.answer_from_worker), without processes.

A success the codec's fast path cannot splice is decoded and still counted as a success (it
must never feed the breaker or the score as ``internal``)."""

from __future__ import annotations

import errno
import os
import signal
from collections import deque
from typing import Any

import pytest

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.pool.events import CallTimedOut, MemoryHigh, SparePromoted, SpawnFailed
from sidecar.pool.local import (
    BUSY,
    CHECKING,
    IDLE,
    MEMBER,
    SPARE,
    STARTING,
    STOPPING,
    Pool,
    PoolSettings,
)
from sidecar.supervision.score import HealthScore, ScoreConfig

from ..pool_doubles import (
    READY,
    FakeProcess,
    PoolHarness,
    Sink,
    reply_ok,
    started,
    submit,
    worker_of,
)


class WorkerDouble:
    """Test double: the few WorkerHandle fields answer_from_worker reads and writes."""

    def __init__(self) -> None:
        self.id = 5
        self.score = HealthScore(ScoreConfig(), clock=lambda: 0.0)
        self.wall_ms: deque[float] = deque()
        self.cpu_ms: deque[float] = deque()
        self.recycle_after_call = ""


@pytest.fixture
def pool(tmp_path) -> Pool:
    pool = Pool(Loop(), PoolSettings(stack_root=str(tmp_path)))
    yield pool
    pool.terminate(0.1)


def answered(pool: Pool, frame: bytes) -> tuple[dict, Call, WorkerDouble]:
    replies: list[bytes] = []
    call = Call("r1", b"", 5.0, replies.append, 0.0)
    worker = WorkerDouble()
    pool.answer_from_worker(worker, call, frame, 0.01)
    assert len(replies) == 1
    return unpack_raw(replies[0]), call, worker


def test_a_spliceable_success_is_forwarded_and_counted(pool: Pool) -> None:
    frame = pack_raw({"ok": True, "ms": 2.0, "cpu": 1.5, "value": 9, "stdout": "", "stderr": ""})
    reply, call, worker = answered(pool, frame)
    assert reply["id"] == "r1" and reply["worker"] == 5 and reply["value"] == 9
    assert call.outcome is None and pool.counters["succeeded"] == 1
    assert list(worker.wall_ms) == [2.0] and list(worker.cpu_ms) == [1.5]


def test_a_success_the_fast_path_cannot_splice_is_decoded_not_a_failure(pool: Pool) -> None:
    frame = pack_raw({"ok": True, "value": 9, "ms": 2.0, "cpu": 1.5, "extra": [1]})
    reply, call, worker = answered(pool, frame)
    assert reply == {"ok": True, "value": 9, "ms": 2.0, "cpu": 1.5, "extra": [1], "id": "r1",
                     "worker": 5}
    assert call.outcome is None
    assert pool.counters["succeeded"] == 1 and pool.errors_by_kind == {}
    assert worker.score.success_rate() == 1.0


def test_an_error_reply_is_counted_by_its_kind(pool: Pool) -> None:
    frame = pack_raw({"ok": False, "ms": 0.0, "cpu": 0.0,
                      "error": {"kind": "user", "type": "ValueError", "message": "no"}})
    reply, call, _ = answered(pool, frame)
    assert reply["error"]["kind"] == "user" and call.outcome == "user"
    assert pool.errors_by_kind == {"user": 1} and pool.counters["succeeded"] == 0


def replies(sink: Sink) -> list[dict[str, Any]]:
    return [unpack_raw(data) for data in sink.replies]


def test_a_timed_out_call_whose_worker_dies_during_the_stack_capture_gets_one_reply(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    [process] = h.processes
    process.defer_stack = True  # the dump is slow to come
    call, sink = submit(h, timeout=1.0)
    h.advance(1.5)
    assert sink.replies == [] and process.stack_waiters  # waiting for the stack
    process.die(-signal.SIGKILL)  # dies meanwhile: answered `timeout` from the exit
    process.stack_arrives()       # then the capture ends and would answer again
    [reply] = replies(sink)
    assert reply["error"]["kind"] == protocol.TIMEOUT
    assert h.pool.counters["crashes"] == 0
    # One timeout, counted once (py3sidecar_errors_total{kind="timeout"} reads this).
    assert h.pool.errors_by_kind == {protocol.TIMEOUT: 1}


def test_a_worker_that_dies_at_its_deadline_before_the_timer_counts_one_timeout(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    [process] = h.processes
    call, sink = submit(h, timeout=1.0)
    h.clock.now += 1.5  # past the deadline, the timer not run yet
    process.die(-signal.SIGKILL)
    [reply] = replies(sink)
    assert reply["error"]["kind"] == protocol.TIMEOUT
    assert h.pool.errors_by_kind == {protocol.TIMEOUT: 1}


def test_a_timed_out_worker_leaves_service_before_its_stack_is_captured(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    [process] = h.processes
    process.defer_stack = True
    call, sink = submit(h, "slow", timeout=1.0)
    h.advance(1.5)
    worker = h.worker(process)
    assert worker.state == STOPPING and worker not in h.pool.idle  # before the dump is in
    assert len(h.processes) == 2  # its place is being filled already
    process.send(reply_ok("late"))  # the reply races the capture: stale, not a success
    assert sink.replies == [] and h.pool.counters["succeeded"] == 0
    follow, follow_sink = submit(h, "next")
    assert process.written == [call.payload]  # the next call is not given to it
    process.stack_arrives()
    [reply] = replies(sink)
    assert reply["error"]["kind"] == protocol.TIMEOUT and call.outcome == protocol.TIMEOUT
    assert process.signals == [signal.SIGTERM]
    h.ready_all()  # the replacement comes up and takes the waiting call
    replacement = h.processes[1]
    assert replacement.written == [follow.payload]
    replacement.send(reply_ok())
    assert [r.get("ok") for r in replies(follow_sink)] == [True]


def reply_of(sink: Sink) -> dict[str, Any]:
    [data] = sink.replies
    return unpack_raw(data)


def handle(h: PoolHarness, process: FakeProcess):
    return h.worker(process)


class Outside:
    """Test double for ``sidecar.isolation.OutsideView``: the kernel's (threads, children)."""

    def __init__(self, threads: int, children: int = 0) -> None:
        self.seen = (threads, children)
        self.closed = False

    def read(self) -> tuple[int, int]:
        return self.seen

    def close(self) -> None:
        self.closed = True


def test_a_full_queue_answers_overloaded_naming_the_keys(make):
    h = started(make, initial_size=1, queue_size=2)
    submit(h, "running")
    submit(h, "q1")
    submit(h, "q2")
    call, sink = submit(h, "over")
    assert reply_of(sink)["error"]["kind"] == protocol.OVERLOADED
    assert reply_of(sink)["error"]["message"] == (
        "all 1 workers are busy and the queue is full (2 calls waiting, "
        "python3.pool.queue-size); retry later or raise python3.pool.max-size")
    assert len(h.pool.queue) == 2 and h.pool.errors_by_kind == {protocol.OVERLOADED: 1}
    assert h.pool.counters["accepted"] == 4 and call.outcome == protocol.OVERLOADED


def test_a_closing_pool_refuses_with_advice(make):
    h = started(make, initial_size=1)
    h.pool.begin_shutdown()
    call, sink = submit(h)
    assert reply_of(sink)["error"] == {
        "kind": "unavailable", "type": None, "traceback": None,
        "message": "the sidecar is shutting down; retry against its replacement"}
    assert h.pool.counters["accepted"] == 1 and h.processes[0].written == []


def test_no_worker_and_none_coming_answers_unavailable_at_once(make):
    h = make(initial_size=1, backoff_initial=5.0)
    h.spawn_error = OSError(errno.ENOENT, "No such file")
    h.pool.start()
    assert h.pool.unavailable_reason().startswith("no Python worker could be started")
    call, sink = submit(h)
    assert reply_of(sink)["error"]["kind"] == protocol.UNAVAILABLE
    assert reply_of(sink)["error"]["message"] == h.pool.unavailable_reason()
    assert h.pool.errors_by_kind == {protocol.UNAVAILABLE: 1} and not h.pool.queue


def test_a_starting_worker_or_a_spare_means_wait_not_unavailable(make):
    h = make(initial_size=1)
    h.pool.start()
    assert h.pool.unavailable_reason() == ""
    call, sink = submit(h)
    assert sink.replies == [] and list(h.pool.queue) == [call]


def test_the_deadline_timer_is_armed_for_a_queued_and_for_a_running_call(make):
    h = started(make, initial_size=1)
    running, running_sink = submit(h, "a", timeout=2.0)
    queued, queued_sink = submit(h, "b", timeout=1.0)
    h.advance(1.0)
    assert reply_of(queued_sink)["error"]["message"] == (
        "the call waited 1s in the queue and no worker became free; the pool has 1 workers, "
        "all busy")
    assert running_sink.replies == []
    h.advance(1.0)
    assert reply_of(running_sink)["error"]["kind"] == protocol.TIMEOUT


def test_the_queue_wait_is_measured(make):
    h = make(initial_size=1)
    waits: list[float] = []
    h.pool.observe_queue_wait = waits.append
    h.pool.start()
    submit(h)
    h.advance(0.25)
    h.ready_all()
    assert waits == [0.25]
    assert h.pool.queue_wait_total == 0.25 and h.pool.queue_wait_count == 1
    submit(h, "b")  # an idle worker: no wait, counted all the same
    assert h.pool.queue_wait_count == 1
    h.processes[0].send(reply_ok())
    submit(h, "c")
    assert waits == [0.25, 0.0] and h.pool.queue_wait_count == 2
    assert h.pool.queue_wait_total == 0.25


def test_a_success_is_timed_counted_and_the_worker_is_idle_again(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    call, sink = submit(h)
    assert worker.state == BUSY and worker.call is call and worker_of(h, call) is worker
    assert call.started_at == h.clock()
    h.advance(0.5)
    process.send(reply_ok(3))
    reply = reply_of(sink)
    assert reply["ok"] is True and reply["value"] == 3 and reply["id"] == "r1"
    assert reply["worker"] == worker.id
    assert worker.calls == 1 and worker.last_used == h.clock() and worker.call is None
    assert worker.busy_seconds == 0.5 and h.pool.busy_seconds_total == 0.5
    assert list(worker.wall_ms) == [1.0] and list(worker.cpu_ms) == [0.5]
    assert h.pool.counters["succeeded"] == 1 and worker.state == IDLE
    assert h.pool.idle == [worker] and not h.pool.busy()


def test_an_error_reply_carries_its_kind_and_counts_against_the_worker(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    before = worker.score.score
    call, sink = submit(h)
    process.send(pack_raw({"ok": False, "error": {"kind": "user", "type": "ValueError",
                                                   "message": "bad"}}))
    reply = reply_of(sink)
    assert reply["error"]["kind"] == "user" and reply["id"] == "r1"
    assert reply["worker"] == worker.id and call.outcome == "user"
    assert h.pool.errors_by_kind == {"user": 1} and h.pool.counters["succeeded"] == 0
    assert worker.score.score <= before


def test_an_error_reply_without_a_kind_is_internal(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    call, sink = submit(h)
    process.send(pack_raw({"ok": False}))
    assert call.outcome == protocol.INTERNAL and h.pool.errors_by_kind == {"internal": 1}


def test_a_memory_error_recycles_the_worker_after_its_call(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    process.send(pack_raw({"ok": False, "error": {"kind": "user", "type": "MemoryError",
                                                   "message": ""}}))
    assert worker.stop_reason == "its call ran out of memory (MemoryError)"
    assert h.pool.counters["recycled"] == 1


def test_a_decoded_success_without_floats_is_counted_without_timings(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    process.send(pack_raw({"ok": True, "value": 1, "ms": 1, "cpu": None, "extra": 1}))
    assert h.pool.counters["succeeded"] == 1 and list(worker.wall_ms) == []


def test_a_frame_from_a_stopping_worker_is_stale(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.drain(worker, "bye")
    process.send(reply_ok())
    assert worker.state == STOPPING and h.pool.counters["succeeded"] == 0


def test_a_frame_too_large_kills_the_worker_naming_the_protocol(make):
    from sidecar.channel import FrameTooLarge

    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)

    def too_large():
        raise FrameTooLarge("a frame of 9 bytes is over the limit of 8")

    process.reader.feed = too_large
    process.on_output()
    assert worker.state == STOPPING and process.signals == [signal.SIGTERM]
    assert worker.stop_reason == ("it broke the protocol: a frame of 9 bytes is over the "
                                  "limit of 8")


def test_a_worker_that_closes_its_channel_and_lives_on_is_killed(make):
    h = started(make, initial_size=1, kill_grace=5.0)
    [process] = h.processes
    worker = handle(h, process)
    process.reader.eof = True
    process.on_output()
    assert worker.state == IDLE and process.signals == []
    h.advance(0.19)
    assert process.signals == []
    h.advance(0.02)
    assert worker.stop_reason == "it closed its channel" and process.signals[0] == signal.SIGTERM
    h.advance(0.21)  # its own grace of 0.2s, not kill-grace
    assert process.signals == [signal.SIGTERM, signal.SIGKILL]


LEFT = pack_raw({"op": "left_behind", "reasons": ["thread 'poller' is still running", 5]})


def test_a_call_that_leaves_code_running_recycles_its_worker_after_the_answer(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    call, sink = submit(h)
    process.send(LEFT)
    reason = "its last call left something behind: thread 'poller' is still running"
    assert worker.tainted == reason and worker.recycle_after_call == reason
    assert h.pool.counters["left_behind"] == 1 and worker.state == BUSY
    process.send(reply_ok())
    assert reply_of(sink)["ok"] is True
    assert worker.stop_reason == reason and h.pool.counters["recycled"] == 1
    follow, follow_sink = submit(h, "next")
    assert process.written == [call.payload]  # it takes no other call
    process.send(pack_raw({"op": "left_behind", "reasons": None}))  # told again: counted once
    assert worker.tainted.startswith("its last call left something behind: ")
    assert h.pool.counters["left_behind"] == 1 and h.pool.counters["recycled"] == 1


def test_an_idle_worker_told_late_leaves_the_idle_list_and_is_recycled(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    assert h.pool.idle == [worker]
    h.pool.workers.taint(worker, {"reasons": "not a list"})
    assert worker.tainted == "its last call left something behind: unspecified"
    assert worker not in h.pool.idle and h.pool.counters["recycled"] == 1
    h.pool.workers.offer(worker)  # a tainted worker is never listed idle again
    assert worker not in h.pool.idle


def test_the_kernel_seeing_more_threads_or_a_child_taints_the_worker(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.threads_at_ready = 2
    worker.outside = Outside(threads=2, children=0)
    submit(h)
    process.send(reply_ok())
    assert not worker.tainted and worker.state == IDLE
    worker.outside = Outside(threads=4, children=0)
    submit(h, "b")
    process.send(reply_ok())
    assert worker.tainted == ("its last call left something behind: the kernel counts 2 more "
                              "thread(s) than it started with and 0 child process(es)")
    other = started(make, initial_size=1)
    w2 = handle(other, other.processes[0])
    w2.threads_at_ready = 3
    w2.outside = Outside(threads=1, children=2)
    submit(other)
    other.processes[0].send(reply_ok())
    assert w2.tainted == ("its last call left something behind: the kernel counts 0 more "
                          "thread(s) than it started with and 2 child process(es)")


def test_without_a_thread_count_at_ready_nothing_is_judged(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.threads_at_ready = 0
    worker.outside = Outside(threads=50, children=3)
    submit(h)
    process.send(reply_ok())
    assert not worker.tainted


def test_memory_above_the_limit_recycles_after_the_call_and_is_published(make):
    h = started(make, initial_size=1, max_memory=100 << 20, rss_sample_interval=0.25)
    [process] = h.processes
    worker = handle(h, process)
    samples = iter([50 << 20, 150 << 20])
    worker.sample_rss = lambda now: next(samples)
    worker.rss_at = h.clock() - 1.0
    submit(h)
    process.send(reply_ok())
    assert worker.rss_baseline == 50 << 20 and h.events_of(MemoryHigh) == []
    worker.rss_at = h.clock() - 1.0
    submit(h, "b")
    process.send(reply_ok())
    assert worker.stop_reason == ("its memory (150 MiB) is above "
                                  "python3.resources.max-memory-per-worker (100 MiB)")
    assert h.events_of(MemoryHigh) == [MemoryHigh("primary", worker.id, process.pid,
                                                  150 << 20)]
    assert worker.rss_baseline == 50 << 20


def test_memory_is_sampled_at_most_once_per_interval(make):
    h = started(make, initial_size=1, max_memory=1, rss_sample_interval=0.25)
    [process] = h.processes
    worker = handle(h, process)
    sampled: list[float] = []
    worker.sample_rss = lambda now: sampled.append(now) or 0
    worker.rss_at = h.clock() - 0.2
    submit(h)
    process.send(reply_ok())
    assert sampled == []
    worker.rss_at = h.clock() - 0.25
    submit(h, "b")
    process.send(reply_ok())
    assert sampled == [h.clock()]


def test_max_calls_recycles_after_that_many_calls(make):
    h = started(make, initial_size=1, max_calls=2)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    process.send(reply_ok())
    assert h.pool.counters["recycled"] == 0
    submit(h, "b")
    process.send(reply_ok())
    assert worker.stop_reason == ("it served 2 calls "
                                  "(python3.resources.max-calls-per-worker)")


def test_membership_counts(make):
    h = make(initial_size=2, spares=1)
    h.pool.start()
    assert h.pool.live_count() == 2 and h.pool.ready_members() == 0
    assert len(h.pool.workers.spares()) == 1 and len(h.pool.workers.members()) == 2
    h.ready_all()
    assert h.pool.ready_members() == 2
    first = h.pool.workers.members()[0]
    h.pool.recycle(first, "old")  # the spare takes over at once
    assert first not in h.pool.workers.members() and h.pool.live_count() == 2
    assert all(w.role == MEMBER for w in h.pool.workers.members())
    assert not h.pool.busy()
    submit(h)
    assert h.pool.busy()


def test_a_ready_spare_waits_outside_the_idle_list(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    assert h.pool.idle == [handle(h, member)] and handle(h, spare).state == IDLE
    submit(h, "a")
    call, sink = submit(h, "b")
    assert spare.written == [] and list(h.pool.queue) == [call]


def test_a_spare_ready_when_a_member_is_missing_is_promoted_and_serves(make):
    h = make(initial_size=1, spares=1)
    h.pool.start()
    member, spare = h.processes
    member.die(1)  # a failed start: the member is missing
    call, sink = submit(h)
    spare.send(READY)
    assert handle(h, spare).role == MEMBER and spare.written == [call.payload]


def test_a_probe_is_sent_counted_and_answered(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    answers: list[Any] = []
    assert h.pool.probe(worker, "ping", 1.0, answers.append, n=3) is True
    assert worker.state == CHECKING and worker not in h.pool.idle
    assert unpack_raw(process.written[-1]) == {"op": "ping", "n": 3}
    assert h.pool.counters["probes"] == 1
    process.send(pack_raw({"ok": True, "value": "pong"}))
    assert answers == [{"ok": True, "value": "pong"}] and worker.state == IDLE
    assert h.pool.idle == [worker]
    h.advance(2.0)  # its timer was cancelled
    assert worker.state == IDLE and answers == [{"ok": True, "value": "pong"}]


def test_a_probe_not_answered_in_time_takes_the_worker_out(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    answers: list[Any] = []
    h.pool.probe(worker, "ping", 1.0, answers.append)
    h.advance(0.9)
    assert answers == [] and worker.state == CHECKING
    h.advance(0.2)
    assert answers == [None] and worker.state == STOPPING
    assert worker.stop_reason == "it did not answer a health probe in time"


def test_a_probe_that_cannot_be_written_expires_at_once(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    process.write_error = BrokenPipeError(errno.EPIPE, "Broken pipe")
    answers: list[Any] = []
    assert h.pool.probe(worker, "ping", 1.0, answers.append) is False
    assert answers == [None] and worker.state == STOPPING


def test_only_an_idle_live_worker_is_probed(make):
    h = make(initial_size=1)
    h.pool.start()
    worker = handle(h, h.processes[0])
    assert worker.state == STARTING
    assert h.pool.probe(worker, "ping", 1.0, lambda r: None) is False
    h.ready_all()
    worker.process.exit = {"returncode": 0, "text": "exit code 0"}
    assert h.pool.probe(worker, "ping", 1.0, lambda r: None) is False
    assert h.pool.counters["probes"] == 0


def test_a_probe_answer_hands_the_worker_the_waiting_call(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.probe(worker, "ping", 1.0, lambda r: None)
    call, sink = submit(h)
    assert list(h.pool.queue) == [call]
    process.send(pack_raw({"ok": True}))
    assert worker.state == BUSY and process.written[-1] == call.payload


def test_the_stack_capture_uses_the_configured_wait(make):
    h = started(make, initial_size=1, stack_capture_wait=0.7)
    [process] = h.processes
    seen: list[Any] = []
    process.capture_stack = lambda wait, then, log_stack=True: seen.append((wait, log_stack))
    h.pool.capture_stack(handle(h, process), lambda text: None, log_stack=False)
    assert seen == [(0.7, False)]


def test_a_spare_role_survives_dispatch(make):
    h = started(make, initial_size=1, spares=1)
    assert [handle(h, p).role for p in h.processes] == [MEMBER, SPARE]


def test_the_backoff_is_capped_by_backoff_max(make):
    h = make(initial_size=1, backoff_initial=0.1, backoff_max=0.15)
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.start()
    h.advance(0.1)
    h.advance(0.15)
    assert [e.retry_in for e in h.events_of(SpawnFailed)] == [0.1, 0.15, 0.15]


def test_the_stack_folder_is_the_pools_under_stack_root(make, tmp_path):
    h = make(name="reports")
    folder = h.pool.workers.factory.stack_dir
    assert os.path.dirname(folder) == str(tmp_path / "pool0")
    assert os.path.basename(folder).startswith("py3sidecar-reports-stacks-")


def test_each_process_gets_the_loop_spec_stack_file_output_and_label(make):
    h = make(initial_size=1)
    seen: list[tuple[Any, ...]] = []
    factory = h.pool.workers.factory.process_factory

    def recording(loop, spec, **kwargs):
        seen.append((loop, spec, kwargs))
        return factory(loop, spec, **kwargs)

    h.pool.workers.factory.process_factory = recording
    h.pool.start()
    h.pool.resize(2)
    (loop, spec, kwargs), (_, _, second) = seen
    made = h.pool.workers.factory
    assert loop is h.loop and spec is made.spec and spec is not None
    assert kwargs == {"stack_file": os.path.join(made.stack_dir, "worker-1.stack"),
                      "fd_output": made.fd_output, "label": "worker 1"}
    assert made.fd_output is not None
    assert second["label"] == "worker 2" and second["stack_file"].endswith("worker-2.stack")
    assert [handle(h, p).id for p in h.processes] == [1, 2] and made.next_worker_id == 3
    assert h.pool.counters["spawned"] == 2


def test_a_write_error_the_process_reports_kills_the_worker_naming_it(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    process.on_write_error(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert worker.state == STOPPING and process.signals == [signal.SIGTERM]
    assert worker.stop_reason == "its pipe failed ([Errno 32] Broken pipe)"


def test_a_write_error_at_dispatch_requeues_the_call_and_names_the_pipe(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    process.write_error = BrokenPipeError(errno.EPIPE, "Broken pipe")
    call, sink = submit(h, timeout=1.0)
    assert worker.stop_reason == "its pipe failed ([Errno 32] Broken pipe)"
    assert worker_of(h, call) is None and list(h.pool.queue) == [call]
    h.advance(1.0)  # no worker came up: it times out in the queue, as a queued call
    assert reply_of(sink)["error"]["message"].startswith("the call waited 1s in the queue")


def test_scores_get_the_calls_duration_and_kind(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    h.advance(0.5)
    process.send(pack_raw({"ok": True, "ms": 1.0, "cpu": 0.5, "value": 1, "stdout": "",
                           "stderr": ""}))  # the layout a worker sends: spliced, not decoded
    submit(h, "b")
    h.advance(0.25)
    process.send(pack_raw({"ok": True, "value": 1, "ms": 2.5, "cpu": None}))  # decoded
    snap = worker.score.snapshot()
    assert snap["mean_execution_ms"] == pytest.approx(375.0)
    assert list(worker.wall_ms) == [1.0] and list(worker.cpu_ms) == [0.5]  # cpu not a float
    assert worker.busy_seconds == 0.75 and h.pool.busy_seconds_total == 0.75
    submit(h, "c")
    h.advance(0.1)
    process.send(pack_raw({"ok": False, "error": {"kind": "internal", "message": "x"}}))
    snap = worker.score.snapshot()
    assert snap["last_failure_kind"] == "internal" and snap["failures_total"] == 1
    assert snap["score"] < worker.score.config.max_score


def test_errors_are_counted_by_kind_across_calls(make):
    h = started(make, initial_size=1, queue_size=0)
    submit(h, "a")
    submit(h, "b")
    submit(h, "c")
    assert h.pool.errors_by_kind == {protocol.OVERLOADED: 2}


def test_queue_waits_add_up(make):
    h = make(initial_size=1)
    h.pool.start()
    submit(h, "a")
    submit(h, "b")
    h.advance(0.5)
    h.ready_all()
    h.advance(0.25)
    h.processes[0].send(reply_ok())
    assert h.pool.queue_wait_total == pytest.approx(1.25) and h.pool.queue_wait_count == 2


def test_busy_counts_queued_calls_too(make):
    h = make(initial_size=1)
    h.pool.start()
    assert not h.pool.busy()
    submit(h)
    assert h.pool.busy() and not any(w.state == BUSY for w in h.pool.workers.values())


def test_a_timed_out_call_names_the_worker_its_stack_and_why_it_stopped(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    logged: list[bool] = []
    real = process.capture_stack
    process.capture_stack = lambda wait, then, log_stack=True: (logged.append(log_stack),
                                                               real(wait, then, log_stack))
    call, sink = submit(h, timeout=1.5)
    h.advance(1.5)
    error = reply_of(sink)["error"]
    assert error["message"] == (f"the call ran longer than its timeout of 1.5s; "
                                f"{worker.describe()} was stopped and is being replaced")
    assert error["worker"] == worker.id and error["traceback"] == process.stack
    assert worker.stop_reason == "its call passed the 1.5s timeout" and logged == [True]
    assert h.events_of(CallTimedOut) == [CallTimedOut("primary", worker.id, process.pid,
                                                      process.stack)]
    assert worker.score.snapshot()["last_failure_kind"] == protocol.TIMEOUT


def test_an_empty_stack_is_no_traceback(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    process.stack = ""
    call, sink = submit(h, timeout=1.0)
    h.advance(1.0)
    assert reply_of(sink)["error"]["traceback"] is None


def test_memory_exactly_at_the_limit_is_within_it(make):
    h = started(make, initial_size=1, max_memory=100 << 20)
    [process] = h.processes
    worker = handle(h, process)
    worker.sample_rss = lambda now: 100 << 20
    worker.rss_at = h.clock() - 1.0
    submit(h)
    process.send(reply_ok())
    assert h.pool.counters["recycled"] == 0 and h.events_of(MemoryHigh) == []


def test_a_stale_probe_timer_never_expires_the_next_probe(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    answers: list[Any] = []
    h.pool.probe(worker, "ping", 1.0, answers.append)
    h.advance(0.5)
    process.send(pack_raw({"ok": True}))
    h.advance(0.1)
    h.pool.probe(worker, "ping", 5.0, answers.append)
    h.advance(0.5)  # past the first probe's deadline
    assert worker.state == CHECKING and answers == [{"ok": True}]
    assert h.pool.counters["probes"] == 2


def test_the_kernels_count_is_read_by_pid_when_no_view_is_open(make, monkeypatch):
    import sidecar.pool.worker_handle as handle_module

    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.threads_at_ready, worker.outside = 2, None
    asked: list[int] = []
    monkeypatch.setattr(handle_module, "outside_view", lambda pid: asked.append(pid) or (3, 0))
    submit(h)
    process.send(reply_ok())
    assert asked == [process.pid] and worker.tainted.endswith(
        "the kernel counts 1 more thread(s) than it started with and 0 child process(es)")


def test_one_child_is_enough_to_taint(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.threads_at_ready, worker.outside = 2, Outside(threads=2, children=1)
    submit(h)
    process.send(reply_ok())
    assert worker.tainted.endswith("0 more thread(s) than it started with and 1 child "
                                   "process(es)")


def test_end_of_channel_unregisters_its_reader(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    r, w = os.pipe()
    try:
        process.reader.fd = r
        h.loop.add_reader(r, lambda: None)
        process.reader.eof = True
        process.on_output()
        assert r not in h.loop.handlers
    finally:
        os.close(r)
        os.close(w)


def test_end_of_channel_of_a_stopping_worker_waits_for_its_drain(make):
    h = started(make, initial_size=1, kill_grace=0.1)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.drain(worker, "bye")
    process.reader.eof = True
    process.on_output()
    h.advance(0.5)
    assert process.signals == []  # not the channel's 0.2s kill: the drain's 2s
    h.advance(1.6)
    assert process.signals == [signal.SIGTERM]


def test_reasons_left_behind_are_joined_and_counted_per_worker(make):
    h = started(make, initial_size=2)
    first, second = (handle(h, p) for p in h.processes)
    h.pool.workers.taint(first, {"reasons": ["a thread", "a child"]})
    h.pool.workers.taint(second, {"reasons": ["x"]})
    assert first.tainted == "its last call left something behind: a thread; a child"
    assert h.pool.counters["left_behind"] == 2
    assert first.stop_reason == first.tainted and second.stop_reason == second.tainted


def test_only_an_idle_live_untainted_worker_is_listed_idle(make):
    h = started(make, initial_size=2)
    first, second = (handle(h, p) for p in h.processes)
    h.pool.drain(first, "bye")
    h.pool.workers.offer(first)
    submit(h)
    h.pool.workers.offer(second)  # busy now
    assert first not in h.pool.idle and second not in h.pool.idle


def test_a_ready_spare_offered_while_the_pool_is_short_becomes_a_member(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    warm = handle(h, spare)
    h.pool.workers.target_size = 2  # a resize's new target, before its refill ran
    h.pool.workers.offer(warm)
    assert warm.role == MEMBER and warm in h.pool.idle
    assert h.events_of(SparePromoted) == [SparePromoted("primary", warm.id, spare.pid)]

    closing = started(make, initial_size=1, spares=1)
    closing_spare = handle(closing, closing.processes[1])
    closing.pool.workers.target_size = 2
    closing.pool.begin_shutdown()  # shutting down: a spare is not promoted any more
    closing.pool.workers.offer(closing_spare)
    assert closing_spare.role == SPARE and closing_spare not in closing.pool.idle


def test_the_snapshot_describes_the_pool(make):
    h = started(make, initial_size=1, name="reports")
    snap = h.pool.snapshot()
    assert snap["name"] == "reports" and len(snap["workers"]) == 1


def test_the_snapshot_reports_sizes_states_queue_counters_and_what_the_factory_made(make):
    h = started(make, initial_size=2, spares=1, min_size=1, max_size=4, queue_size=7)
    submit(h, "a")
    submit(h, "b")
    submit(h, "c")  # both members busy: this one waits in the queue
    h.pool.count_error(protocol.TIMEOUT)
    snap = h.pool.snapshot()
    assert snap["size"] == {"target": 2, "min": 1, "max": 4, "live": 2, "ready": 2,
                            "spares_wanted": 1, "spares_ready": 1}
    assert snap["workers_by_state"] == {s: (2 if s == BUSY else 1 if s == IDLE else 0)
                                        for s in snap["workers_by_state"]}
    assert set(snap["workers_by_state"]) >= {BUSY, IDLE, STARTING, STOPPING}
    assert snap["queue"] == {"length": 1, "capacity": 7}
    assert snap["counters"] == h.pool.counters and snap["counters"]["accepted"] == 3
    assert snap["errors"] == {protocol.TIMEOUT: 1}
    assert snap["spawn"] == h.pool.spawning.snapshot()
    made = h.pool.workers.factory.snapshot()
    assert (snap["fd_output"], snap["template"]) == (made["fd_output"], made["template"])
    assert len(snap["workers"]) == 3


@pytest.mark.parametrize("offer", ["dispatch", "offer"])
def test_only_an_idle_untainted_live_member_is_listed_free(make, offer):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    free = h.pool.dispatch if offer == "dispatch" else h.pool.workers.offer
    h.pool.withdraw(worker)
    worker.state = BUSY  # busy, untainted, alive: not free
    free(worker)
    assert worker not in h.pool.idle
    worker.state = IDLE
    process.exit = {"returncode": 0, "text": "exit code 0", "exit_code": 0}  # exited: not free
    free(worker)
    assert worker not in h.pool.idle


def test_each_success_counts_and_its_timings_are_kept_only_when_both_are_numbers(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    for wall, cpu in ((1.0, 0.5), (3.0, 1.5), (2.0, None), (None, 0.25)):
        submit(h, f"r{wall}{cpu}")
        # ok, ms and cpu first, the worker's layout: two floats are spliced, the rest decoded
        process.send(pack_raw({"ok": True, "ms": wall, "cpu": cpu, "value": 1, "stdout": "",
                               "stderr": ""}))
    assert h.pool.counters["succeeded"] == 4  # two spliced, two decoded
    assert list(worker.wall_ms) == [1.0, 3.0] and list(worker.cpu_ms) == [0.5, 1.5]


def test_the_pools_take_out_of_service_keeps_the_reason(make):
    h = started(make, initial_size=1)
    worker = handle(h, h.processes[0])
    h.pool.take_out_of_service(worker, "an operator asked")
    assert worker.state == STOPPING and worker.stop_reason == "an operator asked"


def test_a_busy_or_exited_spare_offered_while_the_pool_is_short_is_not_promoted(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    warm = handle(h, spare)
    h.pool.workers.target_size = 2  # short of a member: a free spare would be promoted
    warm.state = BUSY
    h.pool.workers.offer(warm)
    assert warm.role == SPARE and h.events_of(SparePromoted) == []
    warm.state = IDLE
    spare.exit = {"returncode": 0, "text": "exit code 0", "exit_code": 0}
    h.pool.workers.offer(warm)
    assert warm.role == SPARE and h.events_of(SparePromoted) == []

