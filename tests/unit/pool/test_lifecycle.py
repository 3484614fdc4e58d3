"""Covers: sidecar.pool.lifecycle, bridge.protocol, bridge.codec, sidecar.observability.metrics,
sidecar.pool.call, sidecar.pool.events, sidecar.pool.local, sidecar.pool.worker_handle.

The pool's state machine (sidecar/pool/local.py, sidecar/pool/lifecycle.py) with fake processes.

Real ``Pool`` and ``Loop``; the clock and the worker processes are test doubles
(``pool_doubles``), so every transition is driven by the test: no sleeping, no children.
"""

from __future__ import annotations

import dataclasses
import errno
import signal
from typing import Any

import pytest

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.observability.metrics import Metrics
from sidecar.pool.call import Call
from sidecar.pool.events import (
    CallTimedOut,
    SparePromoted,
    WorkerExited,
    WorkerReady,
    WorkerSpawned,
    route,
)
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.lifecycle import WorkerSet
from sidecar.pool.local import BUSY, CHECKING, IDLE, MEMBER, SPARE, STOPPING, Pool, PoolSettings
from sidecar.pool.worker_handle import WorkerState

from ..pool_doubles import READY, FakeClock, FakeProcess, PoolHarness, Sink, reply_ok


@pytest.fixture
def harness(tmp_path):
    h = PoolHarness(tmp_path)
    yield h
    h.close()


def submit(h: PoolHarness, rid: str = "r1", timeout: float = 5.0) -> tuple[Call, Sink]:
    sink = Sink()
    call = Call(rid, b"payload-" + rid.encode(), timeout, sink, h.clock())
    h.pool.submit(call)
    return call, sink


def kind_of(sink: Sink) -> str | None:
    assert len(sink.replies) == 1, f"answered {len(sink.replies)} times"
    reply = unpack_raw(sink.replies[0])
    return None if reply.get("ok") else reply["error"]["kind"]


def test_states_are_an_enum_whose_values_are_the_wire_strings() -> None:
    assert [s.value for s in WorkerState] == ["starting", "idle", "busy", "checking", "stopping"]
    assert BUSY is WorkerState.BUSY and BUSY == "busy" and f"{STOPPING}" == "stopping"


def test_a_call_queued_while_no_worker_is_idle_is_dispatched_when_one_is_ready(harness):
    h = harness
    h.pool.start()
    [process] = h.processes
    assert h.worker(process).state == "starting"
    call, sink = submit(h)
    assert list(h.pool.queue) == [call] and process.written == []  # queued, not refused
    process.send(READY)
    worker = h.worker(process)
    assert worker.state == BUSY and worker.call is call and not h.pool.queue
    assert process.written == [call.payload]  # the original bytes, not re-encoded
    process.send(reply_ok(42))
    assert kind_of(sink) is None and unpack_raw(sink.replies[0])["value"] == 42
    assert worker.state == IDLE and h.pool.idle == [worker]
    assert [type(e) for e in h.events] == [WorkerSpawned, WorkerReady]


def test_an_idle_worker_takes_the_call_at_once_and_the_next_from_the_queue(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    first, first_sink = submit(h, "a")
    second, second_sink = submit(h, "b")
    [process] = h.processes
    assert process.written == [first.payload] and list(h.pool.queue) == [second]
    process.send(reply_ok())
    assert process.written == [first.payload, second.payload]  # straight from the queue
    process.send(reply_ok())
    assert kind_of(first_sink) is None and kind_of(second_sink) is None
    assert h.pool.counters["succeeded"] == 2


def test_a_queued_call_past_its_deadline_answers_timeout_once_and_never_runs(harness):
    h = harness
    h.pool.start()
    call, sink = submit(h, timeout=1.0)
    h.advance(1.5)
    assert kind_of(sink) == protocol.TIMEOUT and not h.pool.queue
    [process] = h.processes
    process.send(READY)  # the worker that comes up later must not get the expired call
    assert process.written == [] and h.worker(process).state == IDLE
    h.advance(10.0)
    assert len(sink.replies) == 1 and h.pool.errors_by_kind == {protocol.TIMEOUT: 1}


def test_a_running_call_past_its_deadline_answers_timeout_once_and_the_worker_is_replaced(
        harness):
    h = harness
    h.pool.start()
    h.ready_all()
    call, sink = submit(h, timeout=1.0)
    [process] = h.processes
    h.advance(1.5)
    reply = unpack_raw(sink.replies[0])
    assert kind_of(sink) == protocol.TIMEOUT and "File \"x.py\"" in reply["error"]["traceback"]
    assert process.signals == [signal.SIGTERM]  # stack captured first, then the kill
    [timed_out] = h.events_of(CallTimedOut)
    assert timed_out.worker == h.worker(process).id and timed_out.stack == process.stack
    assert len(h.processes) == 2  # the replacement was started when it left service
    process.send(reply_ok())  # a late reply from the stopping worker is stale
    process.die(-signal.SIGTERM)
    assert len(sink.replies) == 1
    assert h.pool.errors_by_kind == {protocol.TIMEOUT: 1} and h.pool.counters["crashes"] == 0
    [exited] = h.events_of(WorkerExited)
    assert exited.expected  # stopped by the pool: not a crash, whatever it was running
    h.ready_all()
    assert [w.state for w in h.pool.workers.values()] == [IDLE]


def test_a_worker_that_exits_while_busy_answers_crashed_and_is_replaced(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    call, sink = submit(h)
    [process] = h.processes
    process.die(-signal.SIGKILL)
    assert kind_of(sink) == protocol.CRASHED
    error = unpack_raw(sink.replies[0])["error"]
    assert error.get("signal") == signal.SIGKILL or "SIGKILL" in error["message"]
    [exited] = h.events_of(WorkerExited)
    assert (not exited.expected and exited.during_call and exited.signal == signal.SIGKILL
            and exited.signal_name == "SIGKILL")
    assert process.reaped and h.pool.counters["crashes"] == 1
    assert len(h.processes) == 2 and h.worker(h.processes[1]).state == "starting"
    h.ready_all()
    again, again_sink = submit(h, "r2")
    assert h.processes[1].written == [again.payload]


def test_a_worker_that_dies_before_reading_its_request_has_the_call_run_elsewhere(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    call, sink = submit(h)
    [first] = h.processes
    first.unread = True  # it died with the request still unsent/unread
    first.die(-signal.SIGKILL)
    assert sink.replies == [] and list(h.pool.queue) == [call]
    assert h.pool.counters["redispatched"] == 1
    h.ready_all()
    assert h.processes[1].written == [call.payload]
    h.processes[1].send(reply_ok())
    assert kind_of(sink) is None


def test_a_write_error_puts_the_call_back_in_front_for_another_worker(tmp_path):
    h = PoolHarness(tmp_path, initial_size=2)
    try:
        h.pool.start()
        h.ready_all()
        broken, healthy = h.pool.idle[-1].process, h.pool.idle[0].process
        broken.write_error = BrokenPipeError(32, "Broken pipe")
        call, sink = submit(h)
        assert h.worker(broken).state == STOPPING and broken.signals == [signal.SIGTERM]
        # healthy was idle all along: the call must not wait for the replacement
        assert healthy.written == [call.payload] and not h.pool.queue
        healthy.send(reply_ok())
        assert kind_of(sink) is None
    finally:
        h.close()


def test_a_warm_spare_takes_a_dead_members_place_at_once(tmp_path):
    h = PoolHarness(tmp_path, initial_size=1, spares=1)
    try:
        h.pool.start()
        h.ready_all()
        roles = {h.worker(p).role: p for p in h.processes}
        assert set(roles) == {MEMBER, SPARE}
        roles[MEMBER].die(-signal.SIGSEGV)
        [promoted] = h.events_of(SparePromoted)
        assert promoted.worker == h.worker(roles[SPARE]).id
        assert h.pool.idle == [h.worker(roles[SPARE])]
        assert len(h.processes) == 3 and h.worker(h.processes[2]).role == SPARE
    finally:
        h.close()


def test_a_probe_answered_returns_the_worker_idle_and_a_silent_one_leaves_service(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    worker = h.pool.idle[0]
    replies: list = []
    assert h.pool.probe(worker, "ping", 1.0, replies.append)
    assert worker.state == CHECKING and worker not in h.pool.idle
    call, sink = submit(h)  # no idle worker during the probe: the call waits
    assert list(h.pool.queue) == [call]
    worker.process.send(b"\x81\xa2ok\xc3")
    assert replies == [{"ok": True}] and worker.state == BUSY  # the queued call, at once
    worker.process.send(reply_ok())
    assert h.pool.probe(worker, "ping", 1.0, replies.append)
    h.advance(1.5)
    assert replies[-1] is None and worker.state == STOPPING
    assert len(h.processes) == 2  # replaced


def test_a_busy_worker_is_never_probed(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    submit(h)
    [worker] = h.pool.workers.values()
    assert not h.pool.probe(worker, "ping", 1.0, lambda reply: None)
    assert worker.state == BUSY


def test_routing_by_type_rejects_what_is_not_a_pool_event() -> None:
    seen: list = []
    listener = route({WorkerReady: seen.append})
    ready = WorkerReady("p", 1, 2, MEMBER, 0.1)
    listener(ready)
    listener(SparePromoted("p", 1, 2))  # no handler for it: ignored
    assert seen == [ready]
    with pytest.raises(TypeError, match="not a pool event"):
        route({dict: seen.append})
    # frozen: a policy cannot change what the next listener receives
    with pytest.raises(dataclasses.FrozenInstanceError):
        ready.worker = 3  # type: ignore[misc]


def test_metrics_count_restarts_by_reason_from_the_typed_exit_event(harness):
    """What ``sidecar.service`` hooks up: ``Pool.listen`` hands the typed event to
    ``Metrics.on_pool_event``."""
    h = harness
    metrics = Metrics(h.clock)
    seen: list[object] = []

    def hook(event: object) -> None:
        seen.append(event)
        metrics.on_pool_event(event)

    h.pool.listen(hook)
    h.pool.start()
    h.ready_all()
    [first] = h.processes
    first.die(-signal.SIGKILL)  # unexpected: a crash
    h.ready_all()
    [second] = h.live()
    h.pool.drain(h.worker(second), "the pool is scaling down")
    second.die(0)
    assert metrics.restarts == {"crashed": 1, "scale_down": 1}
    crash = next(e for e in seen if isinstance(e, WorkerExited) and e.returncode == -signal.SIGKILL)
    assert crash.pool == "primary" and crash.worker == 1 and crash.expected is False


# ----------------------------------------------------------------------------- the worker set
# The worker set (sidecar/pool/lifecycle.py) on its own, against a recording ``PoolSide``, and
# the pool composed of it (sidecar/pool/local.py).
#
# A ``WorkerSet`` tells its pool only through ``PoolSide``: these tests drive one with fake
# processes (``pool_doubles``) and no ``Pool`` at all, so a lifecycle verb that reached into the
# pool's state would fail here.

OK = pack_raw({"ok": True, "ms": 1.0, "cpu": 0.5, "value": 1, "stdout": "", "stderr": ""})


class RecordingPoolSide:
    """Test double for ``PoolSide``: records what the worker set told it."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    def serve(self, worker: Any) -> None:
        self.told.append(("serve", worker.id))

    def finish_call(self, worker: Any, frame: bytes) -> None:
        self.told.append(("finish_call", frame))

    def finish_probe(self, worker: Any, reply: Any) -> None:
        self.told.append(("finish_probe", reply))

    def withdraw(self, worker: Any) -> None:
        self.told.append(("withdraw", worker.id))

    def requeue(self, call: Call) -> None:
        self.told.append(("requeue", call.rid))

    def call_lost(self, worker: Any, call: Call, end: dict[str, Any]) -> str:
        self.told.append(("call_lost", call.rid))
        return protocol.CRASHED

    def no_worker_can_start(self) -> None:
        self.told.append(("no_worker_can_start", None))


@pytest.fixture
def rig(tmp_path):
    loop = Loop(clock=FakeClock())
    processes: list[FakeProcess] = []

    def factory(*args: Any, **kwargs: Any) -> FakeProcess:
        processes.append(FakeProcess(*args, **kwargs))
        return processes[-1]

    settings = PoolSettings(stack_root=str(tmp_path), initial_size=1, spares=0)
    side, events = RecordingPoolSide(), []
    workers = WorkerSet(loop, settings, side, events.append,
                        WorkerFactory(loop, settings, factory))
    yield workers, side, processes, events
    workers.terminate(0.0)
    loop.close()


def test_a_reply_goes_one_way_from_the_pipe_to_the_pool(rig) -> None:
    workers, side, processes, _ = rig
    workers.start()
    [process] = processes
    process.send(READY)
    [worker] = workers.values()
    assert worker.state == IDLE and side.told == [("serve", worker.id)]
    worker.state, worker.call = BUSY, Call("r1", b"x", 5.0, Sink(), 0.0)
    process.send(OK)
    assert side.told[-1] == ("finish_call", OK)  # read by the set, answered by the pool


def test_the_set_is_a_read_only_mapping_of_its_workers(rig) -> None:
    workers, _, processes, _ = rig
    workers.start()
    [worker] = workers.values()
    assert list(workers) == [worker.id] and len(workers) == 1
    assert workers[worker.id] is worker and workers.get(worker.id) is worker
    assert worker.id in workers and workers.get(999) is None


def test_a_worker_that_dies_with_its_call_unread_hands_the_call_back(rig) -> None:
    workers, side, processes, _ = rig
    workers.start()
    [process] = processes
    process.send(READY)
    [worker] = workers.values()
    worker.state, worker.call = BUSY, Call("r1", b"x", 5.0, Sink(), 0.0)
    process.unread = True
    process.die(-9)
    assert ("requeue", "r1") in side.told and ("withdraw", worker.id) in side.told
    assert not any(name == "call_lost" for name, _ in side.told)
    assert workers.counters["crashes"] == 1 and worker.id not in workers


def test_a_worker_that_dies_during_its_call_has_the_pool_answer_it(rig) -> None:
    workers, side, processes, _ = rig
    workers.start()
    [process] = processes
    process.send(READY)
    [worker] = workers.values()
    worker.state, worker.call = BUSY, Call("r1", b"x", 5.0, Sink(), 0.0)
    process.die(-9)
    assert ("call_lost", "r1") in side.told and workers.counters["crashes"] == 1


def test_a_failed_start_with_no_worker_left_tells_the_pool(rig) -> None:
    workers, side, processes, _ = rig
    workers.spawn_failed("OSError: no", errno.EMFILE)
    assert side.told == [("no_worker_can_start", None)]
    assert workers.counters["spawn_failures"] == 1


def test_the_pool_is_composed_not_inherited(tmp_path) -> None:
    pool = Pool(Loop(), PoolSettings(stack_root=str(tmp_path)))
    try:
        assert Pool.__mro__ == (Pool, object)
        assert isinstance(pool.workers, WorkerSet) and pool.workers.pool is pool
    finally:
        pool.terminate(0.0)


def test_a_failed_write_with_the_call_taken_by_a_promoted_spare_is_answered_once(tmp_path):
    """The first worker's pipe fails: its call goes back to the queue, the warm spare promoted
    in its place takes it at once, and another idle member must not pop an empty queue."""
    h = PoolHarness(tmp_path, initial_size=2, spares=1)
    try:
        h.pool.start()
        h.ready_all()
        spare = next(w for w in h.pool.workers.values() if w.role == SPARE)
        broken = h.pool.idle[-1]
        broken.process.write_error = BrokenPipeError(errno.EPIPE, "Broken pipe")
        sink = Sink()
        call = Call("r1", b"payload", 5.0, sink, h.clock())
        h.pool.submit(call)
        assert spare.state == BUSY and spare.call is call and not h.pool.queue
        spare.process.send(OK)
        assert len(sink.replies) == 1 and unpack_raw(sink.replies[0])["ok"] is True
    finally:
        h.close()
