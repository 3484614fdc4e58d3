"""Covers: sidecar.pool.lifecycle, bridge.protocol, bridge.codec, sidecar.observability.metrics,
sidecar.pool.call, sidecar.pool.events, sidecar.pool.local, sidecar.pool.worker_handle.

The pool's state machine (sidecar/pool/local.py, sidecar/pool/lifecycle.py) with fake processes.

Real ``Pool`` and ``Loop``; the clock and the worker processes are test doubles
(``pool_doubles``), so every transition is driven by the test: no sleeping, no children.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
from typing import Any

import pytest

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.observability.metrics import Metrics
from sidecar.pool import factory as pool_factory
from sidecar.pool.call import Call
from sidecar.pool.events import (
    CallTimedOut,
    RestartLimit,
    SparePromoted,
    SpawnFailed,
    WorkerExited,
    WorkerReady,
    WorkerRecycled,
    WorkerSpawned,
    route,
)
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.lifecycle import WorkerSet
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
from sidecar.pool.worker_handle import WorkerState
from sidecar.process.exits import describe_exit

from ..pool_doubles import (
    READY,
    FakeClock,
    FakeProcess,
    PoolHarness,
    Sink,
    reply_ok,
    started,
    submit,
    worker_of,
)


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


def error_of(sink: Sink) -> dict[str, Any]:
    [data] = sink.replies
    return unpack_raw(data)["error"]


def handle(h: PoolHarness, process: FakeProcess):
    worker = h.worker(process)
    assert worker is not None
    return worker


def test_a_spawned_worker_is_starting_with_its_stack_file_and_start_timer(make):
    h = make(initial_size=1, start_timeout=7.0)
    h.pool.start()
    [process] = h.processes
    worker = handle(h, process)
    assert (worker.id, worker.role, worker.state) == (1, MEMBER, STARTING)
    assert process.label == worker.describe()
    assert h.pool.counters["spawned"] == 1
    assert h.events == [WorkerSpawned("primary", 1, process.pid, MEMBER)]
    h.advance(6.9)
    assert worker.state == STARTING and process.signals == []
    h.advance(0.2)  # the start timeout: killed, with the key to change in the reason
    assert worker.state == STOPPING and process.signals == [signal.SIGTERM]
    assert worker.stop_reason == ("it did not get ready within 7s "
                                  "(python3.worker.start-timeout)")
    spawn = h.pool.spawning
    assert spawn.failures == 1
    assert spawn.last_error == (f"{worker.describe()} failed to start: it did not get ready "
                                "within 7s (python3.worker.start-timeout)")


def test_a_ready_worker_is_idle_and_its_start_timer_is_off(make):
    h = make(initial_size=1, start_timeout=7.0)
    h.pool.start()
    [process] = h.processes
    h.advance(3.0)
    process.send(pack_raw({"op": "ready", "preload_errors": ["numpy: No module"]}))
    worker = handle(h, process)
    assert worker.state == IDLE and h.pool.idle == [worker]
    assert worker.ready_at == h.clock() and worker.preload_errors == ["numpy: No module"]
    [ready] = h.events_of(WorkerReady)
    assert ready == WorkerReady("primary", worker.id, process.pid, MEMBER, 3.0)
    h.advance(10.0)
    assert worker.state == IDLE and process.signals == []  # the start timer was cancelled
    assert h.pool.spawning.failures == 0


def test_being_ready_resets_the_spawn_failures(make):
    h = make(initial_size=1)
    h.pool.start()
    h.pool.spawning.failures = 3
    h.ready_all()
    assert h.pool.spawning.failures == 0


def test_a_worker_that_greets_with_anything_else_is_killed_naming_it(make):
    h = make(initial_size=1)
    h.pool.start()
    [process] = h.processes
    process.send(pack_raw({"op": "hello"}))
    worker = handle(h, process)
    assert worker.state == STOPPING and process.signals == [signal.SIGTERM]
    assert worker.stop_reason == "it sent {'op': 'hello'} instead of its ready message"


def test_a_spawn_error_is_a_failed_start_naming_the_command(make):
    h = make(initial_size=1, python=["/no/such/python3"], backoff_initial=0.5)
    h.spawn_error = OSError(errno.EMFILE, "Too many open files")
    h.pool.start()
    assert h.processes == []
    [failed] = h.events_of(SpawnFailed)
    message = "OSError: [Errno 24] Too many open files (command: /no/such/python3)"
    assert failed == SpawnFailed("primary", message, errno.EMFILE, True, 1, 0.5)
    assert h.pool.counters["spawn_failures"] == 1
    h.spawn_error = None
    h.advance(0.4)
    assert h.processes == []  # backing off
    h.advance(0.2)
    assert len(h.processes) == 1  # the back-off timer started it


@pytest.mark.parametrize(("err", "resource"), [
    (errno.EMFILE, True), (errno.ENFILE, True), (errno.ENOMEM, True), (errno.EAGAIN, True),
    (errno.ENOENT, False), (errno.EACCES, False)])
def test_a_spawn_failure_tells_resource_exhaustion_apart(make, err, resource):
    h = make(initial_size=1)
    h.spawn_error = OSError(err, os.strerror(err))
    h.pool.start()
    assert h.events_of(SpawnFailed)[0].resource_exhaustion is resource


def test_with_no_live_worker_a_spawn_failure_answers_the_queue_unavailable(make):
    h = make(initial_size=1)
    h.spawn_error = OSError(errno.ENOENT, "No such file or directory")
    h.pool.start()
    call, sink = submit(h)
    assert sink.replies and error_of(sink)["kind"] == protocol.UNAVAILABLE
    assert "no Python worker could be started" in error_of(sink)["message"]
    assert h.pool.errors_by_kind == {protocol.UNAVAILABLE: 1} and not h.pool.queue


def test_a_spawn_failure_with_a_live_worker_leaves_the_queue_waiting(make):
    h = started(make, initial_size=1, max_size=2)
    call, sink = submit(h, "a")
    queued, queued_sink = submit(h, "b")
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.resize(2)
    assert queued_sink.replies == [] and list(h.pool.queue) == [queued]


def test_a_warm_spare_is_promoted_when_a_member_dies(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    assert handle(h, spare).role == SPARE
    member.die(-signal.SIGKILL)
    assert handle(h, spare).role == MEMBER and handle(h, spare) in h.pool.idle
    [promoted] = h.events_of(SparePromoted)
    assert promoted == SparePromoted("primary", handle(h, spare).id, spare.pid)


def test_kill_sends_sigterm_then_sigkill_after_the_grace(make):
    h = started(make, initial_size=1, kill_grace=0.5)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.kill(worker, "told to")
    assert worker.stop_reason == "told to" and worker.killing and worker not in h.pool.idle
    assert process.signals == [signal.SIGTERM] and h.pool.counters["kills"] == 1
    h.pool.kill(worker, "again")  # already being killed: no second signal, same reason
    assert process.signals == [signal.SIGTERM] and h.pool.counters["kills"] == 1
    assert worker.stop_reason == "told to"
    h.advance(0.4)
    assert process.signals == [signal.SIGTERM]
    h.advance(0.2)
    assert process.signals == [signal.SIGTERM, signal.SIGKILL]


def test_kill_with_its_own_grace(make):
    h = started(make, initial_size=1, kill_grace=5.0)
    [process] = h.processes
    h.pool.kill(handle(h, process), "now", grace=0.1)
    h.advance(0.2)
    assert process.signals == [signal.SIGTERM, signal.SIGKILL]


def test_a_dead_worker_is_not_signalled(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    process.exit = {"returncode": 0, "text": "exit code 0"}
    h.pool.kill(worker, "late")
    assert process.signals == [] and h.pool.counters["kills"] == 0


def test_drain_closes_an_idle_workers_input_and_kills_it_if_it_lingers(make):
    h = started(make, initial_size=1, kill_grace=0.5)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.drain(worker, "enough")
    assert worker.state == STOPPING and process.input_closed and process.signals == []
    assert worker.stop_reason == "enough" and worker not in h.pool.idle
    h.advance(1.9)
    assert process.signals == []  # at least 2 s to exit by itself
    h.advance(0.2)
    assert process.signals == [signal.SIGTERM] and worker.stop_reason == "enough"


def test_drain_waits_with_a_long_grace_when_kill_grace_is_longer(make):
    h = started(make, initial_size=1, kill_grace=3.0)
    [process] = h.processes
    h.pool.drain(handle(h, process), "enough")
    h.advance(2.9)
    assert process.signals == []
    h.advance(0.2)
    assert process.signals == [signal.SIGTERM]


def test_drain_of_a_busy_worker_waits_for_its_call(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    call, sink = submit(h)
    h.pool.drain(worker, "scale down")
    assert worker.state == BUSY and worker.drain_after_call == "scale down"
    assert not process.input_closed
    process.send(reply_ok())
    assert unpack_raw(sink.replies[0])["ok"] is True
    assert worker.state == STOPPING and process.input_closed
    assert worker.stop_reason == "scale down"


def test_drain_without_a_reason_keeps_the_one_it_has_or_says_replaced(make):
    h = started(make, initial_size=2)
    first, second = (handle(h, p) for p in h.processes)
    first.stop_reason = "old reason"
    h.pool.drain(first)
    assert first.stop_reason == "old reason"
    h.pool.drain(second)
    assert second.stop_reason == "replaced"
    h.pool.drain(second, "other")  # already stopping: unchanged
    assert second.stop_reason == "replaced"


def test_recycle_with_a_ready_spare_hands_over_at_once(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    old, warm = handle(h, member), handle(h, spare)
    h.pool.recycle(old, "too old")
    assert h.pool.counters["recycled"] == 1
    assert h.events_of(WorkerRecycled) == [WorkerRecycled("primary", old.id, member.pid,
                                                          "too old")]
    assert warm.role == MEMBER and warm in h.pool.idle
    assert old.state == STOPPING and old.replaced_by == warm.id and member.input_closed
    assert old.stop_reason == "too old"
    assert len(h.processes) == 3  # a new spare to keep the hedge
    h.pool.recycle(old, "twice")  # already on its way out: nothing more
    assert h.pool.counters["recycled"] == 1


def test_recycle_without_a_spare_serves_until_the_replacement_is_ready(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    old = handle(h, process)
    h.pool.recycle(old, "memory")
    new_process = h.processes[1]
    new = handle(h, new_process)
    assert old.replaced_by == new.id and new.replaces is old
    assert old.state == IDLE and h.pool.idle == [old]  # listed once, still serving
    call, sink = submit(h)
    assert process.written == [call.payload]
    process.send(reply_ok())
    new_process.send(READY)
    assert old.state == STOPPING and process.input_closed and new.replaces is None
    assert new in h.pool.idle and old not in h.pool.idle


def test_a_spare_is_recycled_by_draining_it(make):
    h = started(make, initial_size=1, spares=1)
    member, spare = h.processes
    warm = handle(h, spare)
    h.pool.recycle(warm, "stale")
    assert warm.state == STOPPING and warm.replaced_by == -1
    assert handle(h, member).role == MEMBER and len(h.processes) == 3


def test_a_tainted_worker_whose_replacement_cannot_start_is_drained(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.tainted = "left threads running"
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.recycle(worker, "tainted")
    assert worker.state == STOPPING and process.input_closed


def test_an_untainted_worker_whose_replacement_cannot_start_serves_on(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.recycle(worker, "old")
    assert worker.state == IDLE and h.pool.idle == [worker] and worker.replaced_by is None


def test_recycle_when_free_waits_for_the_call_of_a_busy_worker(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    h.pool.recycle_when_free(worker, "max calls")
    h.pool.recycle_when_free(worker, "second reason")
    assert worker.recycle_after_call == "max calls" and h.pool.counters["recycled"] == 0
    process.send(reply_ok())
    assert h.pool.counters["recycled"] == 1 and worker.stop_reason == "max calls"
    idle = started(make, initial_size=1)
    other = handle(idle, idle.processes[0])
    idle.pool.recycle_when_free(other, "now")
    assert idle.pool.counters["recycled"] == 1 and other.stop_reason == "now"


class FakeTemplate:
    """Test double for ``sidecar.template.WorkerTemplate``: records renew and close."""

    def __init__(self) -> None:
        self.renewed: list[str] = []
        self.closed: list[float] = []

    def renew(self, reason: str) -> None:
        self.renewed.append(reason)

    def close(self, deadline: float) -> None:
        self.closed.append(deadline)


def test_renew_replaces_spares_first_then_members_and_starting_ones_once_ready(make):
    h = make(initial_size=2, spares=1, max_size=4)
    h.pool.start()
    member, starting_process, spare = h.processes
    member.send(READY)
    spare.send(READY)
    template = FakeTemplate()
    factory = h.pool.workers.factory
    factory.spec = dataclasses.replace(factory.spec, template=template)
    starting = handle(h, starting_process)
    assert starting.state == STARTING and handle(h, spare).role == SPARE
    assert h.pool.renew_workers("code changed") == 3
    assert template.renewed == ["code changed"]
    assert [(e.worker, e.reason) for e in h.events_of(WorkerRecycled)] == [
        (handle(h, spare).id, "code changed"), (handle(h, member).id, "code changed")]
    assert handle(h, spare).state == STOPPING and handle(h, member).replaced_by is not None
    assert starting.recycle_when_ready == "code changed"
    # The two replacements and the first one are starting: each renewed once ready.
    assert h.pool.renew_workers("again") == 3
    assert [w.recycle_when_ready for w in h.pool.workers.values()
            if w.state == STARTING] == ["again"] * 3
    starting_process.send(READY)
    assert starting.recycle_when_ready == "" and starting.stop_reason == "again"
    assert h.pool.counters["recycled"] == 3


def test_renew_without_a_template_renews_the_workers_only(make):
    h = started(make, initial_size=1)
    assert h.pool.renew_workers("edit") == 1 and h.pool.counters["recycled"] == 1


def test_resize_is_clamped_and_shrinking_drains_idle_low_score_big_workers_first(make):
    h = started(make, initial_size=3, min_size=1, max_size=3)
    a, b, c = (handle(h, p) for p in h.processes)
    for worker in (b, c):
        worker.score.record_failure(protocol.CRASHED)
    assert a.score.score > b.score.score == c.score.score
    c.rss = 1 << 30
    h.pool.resize(10)
    assert h.pool.target_size == 3 and len(h.processes) == 3
    h.pool.resize(2)
    assert h.pool.target_size == 2
    assert [w.state for w in (a, b, c)] == [IDLE, IDLE, STOPPING]
    assert c.stop_reason == "the pool is scaling down"
    h.pool.resize(0)
    assert h.pool.target_size == 1
    assert [w.state for w in (a, b)] == [IDLE, STOPPING]


def test_shrinking_prefers_an_idle_worker_over_a_busy_one(make):
    h = started(make, initial_size=2, min_size=1)
    submit(h)
    [busy] = [w for w in h.pool.workers.values() if w.state == BUSY]
    [free] = [w for w in h.pool.workers.values() if w.state == IDLE]
    busy.score.record_failure(protocol.CRASHED)  # even when the busy one scores lower
    h.pool.resize(1)
    assert free.state == STOPPING and busy.state == BUSY and not busy.drain_after_call


def test_growing_spawns_members(make):
    h = started(make, initial_size=1, max_size=4)
    h.pool.resize(3)
    assert h.pool.target_size == 3 and len(h.processes) == 3
    assert [handle(h, p).role for p in h.processes] == [MEMBER] * 3
    h.pool.resize(3)  # the same size: nothing more
    assert len(h.processes) == 3


def test_an_unexpected_exit_is_published_with_its_facts(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    worker.rss = 1234
    call, sink = submit(h)
    process.die(-signal.SIGKILL)
    [exited] = h.events_of(WorkerExited)
    assert exited.pool == "primary" and exited.worker == worker.id and exited.pid == process.pid
    assert (exited.expected, exited.returncode, exited.during_call, exited.rss,
            exited.starting) == (False, -9, True, 1234, False)
    assert exited.reason == exited.text and exited.signal == signal.SIGKILL
    assert exited.signal_name == "SIGKILL" and exited.exit_code is None
    assert process.reaped and worker.id not in h.pool.workers
    assert h.pool.counters["crashes"] == 1
    assert error_of(sink)["kind"] == protocol.CRASHED
    assert error_of(sink)["message"] == (
        f"the Python worker running this call died with {exited.text}; the call's effects "
        "are unknown; a replacement worker has been started")
    assert error_of(sink)["worker"] == worker.id and error_of(sink)["pid"] == process.pid
    assert len(h.processes) == 2  # replaced


def test_an_expected_exit_is_no_crash_and_says_why_it_was_stopped(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    h.pool.drain(worker, "scaling down")
    process.die(0)
    [exited] = h.events_of(WorkerExited)
    assert exited.expected is True and exited.reason == "scaling down"
    assert exited.during_call is False and exited.exit_code == 0
    assert h.pool.counters["crashes"] == 0 and len(h.pool.spawning.restarts) == 0


def test_an_idle_worker_dying_unexpectedly_counts_as_a_crash_and_a_restart(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    process.die(3)
    assert h.pool.counters["crashes"] == 1 and len(h.pool.spawning.restarts) == 1
    [exited] = h.events_of(WorkerExited)
    assert exited.exit_code == 3 and exited.during_call is False


def test_a_worker_dying_before_it_is_ready_is_a_failed_start(make):
    h = make(initial_size=1)
    h.pool.start()
    [process] = h.processes
    worker = handle(h, process)
    process.die(7)
    [exited] = h.events_of(WorkerExited)
    assert exited.starting is True
    assert h.pool.spawning.failures == 1
    assert h.pool.spawning.last_error == (f"{worker.describe()} exited with exit code 7 "
                                          "before it was ready")
    assert len(h.pool.spawning.restarts) == 0


def test_the_restart_limit_is_published(make):
    h = started(make, initial_size=1, max_restarts=2, restart_window=10.0)
    h.processes[0].die(-signal.SIGKILL)
    assert h.events_of(RestartLimit) == []
    h.ready_all()
    h.processes[1].die(-signal.SIGKILL)
    assert h.events_of(RestartLimit) == [RestartLimit("primary", 2, 10.0)]
    assert len(h.processes) == 2  # the next start waits for the window
    h.advance(10.1)
    assert len(h.processes) == 3


def test_a_replacement_dying_before_it_took_over_frees_the_old_one(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    old = handle(h, process)
    h.pool.recycle(old, "old")
    new_process = h.processes[1]
    new_process.die(1)
    assert old.replaced_by is None and old.state == IDLE
    old.tainted = "threads"
    h.pool.recycle(old, "again")
    h.processes[2].die(1)
    assert old.state == STOPPING  # a tainted one waits for no replacement


def test_begin_shutdown_stops_refilling(make):
    h = started(make, initial_size=1)
    h.pool.begin_shutdown()
    assert h.pool.closing is True
    h.processes[0].die(-signal.SIGKILL)
    assert len(h.processes) == 1


def test_begin_shutdown_cancels_the_back_off_timer(make):
    h = make(initial_size=1, backoff_initial=1.0)
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.start()
    h.spawn_error = None
    h.pool.begin_shutdown()
    h.advance(2.0)
    assert h.processes == []


def test_terminate_answers_everything_left_and_stops_every_worker(make, tmp_path):
    h = started(make, initial_size=1, spares=1)
    template = FakeTemplate()
    factory = h.pool.workers.factory
    factory.spec = dataclasses.replace(factory.spec, template=template)
    running, running_sink = submit(h, "a")
    busy = worker_of(h, running)
    busy_process = busy.process
    [idle_process] = [p for p in h.processes if p is not busy_process]
    queued, queued_sink = submit(h, "b")
    queued_too, queued_too_sink = submit(h, "c")
    stack_dir = h.pool.workers.factory.stack_dir
    assert os.path.isdir(stack_dir)
    open(os.path.join(stack_dir, "worker-1.stack"), "w").close()
    h.pool.terminate(0.0)
    assert error_of(running_sink) == {
        "kind": "unavailable", "type": None, "traceback": None, "worker": busy.id,
        "message": "the sidecar shut down while this call was running"}
    for sink in (queued_sink, queued_too_sink):
        assert error_of(sink)["kind"] == protocol.UNAVAILABLE
        assert error_of(sink)["message"] == ("the sidecar shut down before this call could "
                                             "start")
    assert busy_process.signals == [signal.SIGTERM] and idle_process.signals == []
    assert busy_process.input_closed and idle_process.input_closed
    assert busy_process.reaped and idle_process.reaped
    assert h.pool.workers == {} and h.pool.idle == [] and not h.pool.queue
    assert len(template.closed) == 1 and h.pool.closing is True
    assert not os.path.exists(stack_dir)


def test_a_worker_recycled_while_idle_keeps_serving_call_after_call_until_replaced(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    old = handle(h, process)
    old.recycle_after_call = "stale flag"
    h.pool.recycle(old, "renewed")
    assert old.recycle_after_call == ""  # the recycle it asked for is under way
    new = handle(h, h.processes[1])
    assert new.role == MEMBER and new.state == STARTING
    for rid in ("a", "b", "c"):  # each call back in the idle list, not held back
        call, sink = submit(h, rid)
        assert process.written[-1] == call.payload, rid
        process.send(reply_ok())
        assert unpack_raw(sink.replies[0])["ok"] is True and h.pool.idle == [old]
    assert h.pool.counters["recycled"] == 1


def test_recycle_is_refused_for_a_worker_already_replaced_or_stopping(make):
    h = started(make, initial_size=2)
    first, second = (handle(h, p) for p in h.processes)
    h.pool.recycle(first, "once")
    assert first.replaced_by is not None and first.state == IDLE
    h.pool.recycle(first, "twice")  # replaced already, still serving: nothing more
    assert h.pool.counters["recycled"] == 1 and len(h.processes) == 3
    h.pool.drain(second, "going")
    h.pool.recycle(second, "late")  # stopping already, not replaced: nothing either
    assert h.pool.counters["recycled"] == 1 and second.stop_reason == "going"


def test_a_worker_recycled_after_its_call_serves_on_until_replaced(make):
    h = started(make, initial_size=1, max_calls=1)
    [process] = h.processes
    worker = handle(h, process)
    submit(h)
    process.send(reply_ok())
    assert h.pool.counters["recycled"] == 1 and worker.replaced_by is not None
    assert worker.state == IDLE and h.pool.idle == [worker]


def test_a_worker_dying_at_exactly_its_calls_deadline_answers_timeout(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    process.defer_stack = True
    call, sink = submit(h, timeout=2.0)
    h.advance(2.0)  # the deadline: the capture starts
    process.die(-signal.SIGKILL)
    error = error_of(sink)
    assert error["kind"] == protocol.TIMEOUT and error["worker"] == worker.id
    assert error["message"] == (f"the call ran longer than its timeout of 2s; "
                                f"{worker.describe()} was stopped")
    # Counted as a timeout only (today twice: once at the deadline, once at the exit).
    assert set(h.pool.errors_by_kind) == {protocol.TIMEOUT}
    assert h.pool.counters["crashes"] == 0


def test_a_death_just_before_the_deadline_is_a_crash(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    call, sink = submit(h, timeout=2.0)
    h.clock.now += 1.999  # no loop turn: the timer has not fired
    process.die(-signal.SIGKILL)
    assert error_of(sink)["kind"] == protocol.CRASHED


def test_crashes_are_counted_and_each_carries_its_exit_details(make):
    h = started(make, initial_size=2)
    for n, returncode in enumerate((-signal.SIGSEGV, 3), 1):
        call, sink = submit(h, f"r{n}")
        worker = worker_of(h, call)
        worker.process.die(returncode)
        error = error_of(sink)
        assert set(error) == {"kind", "type", "message", "traceback", "worker", "pid",
                              *(k for k in worker.process.exit if k not in ("returncode",
                                                                             "text"))}
        assert "returncode" not in error and "text" not in error
        assert worker.score.snapshot()["last_failure_kind"] == protocol.CRASHED
        assert h.pool.counters["crashes"] == n
        assert h.pool.errors_by_kind == {protocol.CRASHED: n}
        h.ready_all()
    assert error["exit_code"] == 3


def test_idle_deaths_add_up_as_crashes(make):
    h = started(make, initial_size=2)
    for process in list(h.processes):
        process.die(1)
    assert h.pool.counters["crashes"] == 2


def test_kills_add_up(make):
    h = started(make, initial_size=2)
    for process in list(h.processes):
        h.pool.kill(handle(h, process), "x")
    assert h.pool.counters["kills"] == 2


def test_an_idle_spare_is_promoted_before_a_starting_one(make):
    h = started(make, initial_size=1, spares=2)
    member, ready_spare, starting_spare = h.processes
    handle(h, starting_spare).state = STARTING  # still coming up
    member.die(-signal.SIGKILL)
    assert handle(h, ready_spare).role == MEMBER
    assert handle(h, starting_spare).role == SPARE


def test_with_no_live_worker_the_backoff_answers_the_queue_unavailable(make):
    h = make(initial_size=1, backoff_initial=1.0)
    h.pool.start()
    [process] = h.processes
    call, sink = submit(h)
    h.spawn_error = OSError(errno.ENOENT, "No such file")
    process.die(1)  # the only worker, dying before it was ready
    error = error_of(sink)
    assert error["kind"] == protocol.UNAVAILABLE
    assert error["message"] == h.pool.unavailable_reason() != ""
    assert h.pool.errors_by_kind == {protocol.UNAVAILABLE: 1}


def test_with_a_live_worker_a_failed_start_keeps_the_queue(make):
    h = started(make, initial_size=2, backoff_initial=1.0)
    first, second = h.processes
    submit(h, "a")
    submit(h, "b")
    call, sink = submit(h, "c")
    h.spawn_error = OSError(errno.ENOENT, "No such file")
    first.die(-signal.SIGKILL)
    assert sink.replies == [] and call in h.pool.queue
    assert h.pool.counters["spawn_failures"] == 1


def test_failed_starts_add_up(make):
    h = make(initial_size=2, backoff_initial=0.01)
    h.spawn_error = OSError(errno.ENOENT, "gone")
    h.pool.start()
    h.advance(0.02)
    assert h.pool.counters["spawn_failures"] == 2


def test_one_failed_start_stops_the_round_and_arms_the_backoff(make):
    h = make(initial_size=3, backoff_initial=1.0)
    made = []

    def fail_second(*args, **kwargs):
        made.append(1)
        if len(made) == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return FakeProcess(*args, **kwargs)

    h.pool.workers.factory.process_factory = fail_second
    h.pool.start()
    assert len(made) == 2  # the third is not tried in the same round
    assert h.pool.workers.spawn_timer is not None


def test_flush_answers_every_queued_call_unavailable_with_the_reason(make):
    h = make(initial_size=1, backoff_initial=5.0)
    h.pool.start()
    calls = [submit(h, f"r{i}") for i in range(3)]
    h.spawn_error = OSError(errno.ENOENT, "No such file")
    h.processes[0].die(1)
    reason = h.pool.unavailable_reason()
    for call, sink in calls:
        assert error_of(sink)["kind"] == protocol.UNAVAILABLE
        assert error_of(sink)["message"] == reason and call.outcome == protocol.UNAVAILABLE
    assert h.pool.errors_by_kind == {protocol.UNAVAILABLE: 3} and not h.pool.queue


def test_flush_with_a_worker_coming_answers_nothing(make):
    h = make(initial_size=1)
    h.pool.start()
    call, sink = submit(h)
    h.pool.no_worker_can_start()
    assert sink.replies == [] and list(h.pool.queue) == [call]


def test_ready_samples_memory_and_counts_the_threads_it_started_with(make, monkeypatch):
    import sidecar.pool.lifecycle as lifecycle

    opened: list[int] = []

    class View:
        def __init__(self, pid):
            opened.append(pid)

        def read(self):
            return 5, 2

        def close(self):
            pass

    monkeypatch.setattr(lifecycle, "OutsideView", View)
    h = make(initial_size=1)
    h.pool.start()
    [process] = h.processes
    worker = handle(h, process)
    sampled: list[float] = []
    worker.sample_rss = lambda now: sampled.append(now) or 0
    h.advance(1.0)
    process.send(READY)
    assert sampled == [h.clock()] and opened == [process.pid]
    assert worker.threads_at_ready == 5


def test_an_unreadable_thread_count_at_ready_is_zero(make, monkeypatch):
    import sidecar.pool.lifecycle as lifecycle

    class Gone:
        def __init__(self, pid):
            pass

        def read(self):
            return -1, -1

        def close(self):
            pass

    monkeypatch.setattr(lifecycle, "OutsideView", Gone)
    h = started(make, initial_size=1)
    assert handle(h, h.processes[0]).threads_at_ready == 0


def test_every_frame_left_in_the_pipe_is_read_on_exit(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    left = pack_raw({"op": "left_behind", "reasons": ["a thread"]})
    batches = [[left], [reply_ok(5)]]
    process.reader.feed = lambda: batches.pop(0) if batches else None
    call, sink = submit(h)
    process.exit = {"returncode": 0, "text": "exit code 0", "exit_code": 0}
    process.on_exit()
    assert unpack_raw(sink.replies[0])["value"] == 5 and worker.tainted


def test_a_dead_workers_unread_call_runs_elsewhere_once_counted(make):
    h = started(make, initial_size=2)
    first, second = h.processes
    calls = [submit(h, "a"), submit(h, "b")]
    for process in (first, second):
        process.unread = True
    sizes: list[int] = []
    first.never_read = lambda size: sizes.append(size) or True
    first.die(-signal.SIGKILL)
    second.die(-signal.SIGKILL)
    assert sizes == [len(calls[0][0].payload) + 4]  # its frame: payload and length header
    assert h.pool.counters["redispatched"] == 2
    assert [worker_of(h, c) for c, _ in calls] == [None, None]
    assert all(sink.replies == [] for _, sink in calls)
    h.ready_all()
    assert sorted(worker_of(h, c).id for c, _ in calls) == [3, 4]


def test_a_dead_worker_is_forgotten_and_its_probe_answered(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    worker = handle(h, process)
    answers: list[Any] = []
    h.pool.probe(worker, "ping", 5.0, answers.append)
    process.die(-signal.SIGKILL)
    assert answers == [None] and worker.probe_done is None
    assert worker.id not in h.pool.workers and worker.state == STOPPING
    assert worker.call is None


def test_a_dead_replacement_leaves_the_old_worker_unreplaced(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    old = handle(h, process)
    h.pool.recycle(old, "old")
    new = handle(h, h.processes[1])
    new.process.die(1)
    assert new.replaces is None and old.replaced_by is None


def test_the_restart_limit_event_counts_the_restarts_in_the_window(make):
    h = started(make, initial_size=3, max_restarts=3, restart_window=5.0)
    for process in list(h.processes):
        process.die(-signal.SIGKILL)
    assert h.events_of(RestartLimit) == [RestartLimit("primary", 3, 5.0)]


class TemplateDouble:
    """Test double for ``sidecar.template.WorkerTemplate``: records how it was made."""

    made: list[TemplateDouble] = []

    def __init__(self, loop, settings, spec) -> None:
        self.args = (loop, settings, spec)
        self.started = False
        TemplateDouble.made.append(self)

    def start(self) -> None:
        self.started = True


def real_process_pool(tmp_path, monkeypatch, **settings):
    from sidecar.loop import Loop
    from sidecar.pool.local import Pool, PoolSettings

    TemplateDouble.made = []
    monkeypatch.setattr(pool_factory, "WorkerTemplate", TemplateDouble)
    loop = Loop()
    return Pool(loop, PoolSettings(stack_root=str(tmp_path), **settings)), loop


def test_a_pool_of_real_processes_starts_its_template(tmp_path, monkeypatch):

    monkeypatch.setattr(pool_factory, "template_unsupported", lambda settings: "")
    pool, loop = real_process_pool(tmp_path, monkeypatch, spawn="template")
    spec = pool.workers.factory.spec
    pool.workers.factory.start_template()  # not start(): no process is spawned here
    [template] = TemplateDouble.made
    assert template.started and pool.workers.factory.spec.template is template
    assert template.args == (loop, pool.settings, spec)
    assert dataclasses.replace(pool.workers.factory.spec, template=None) == spec
    loop.close()


@pytest.mark.parametrize("spawn", ["plain", "template"])
def test_a_pool_that_cannot_use_a_template_spawns_plain(tmp_path, monkeypatch, spawn):

    asked: list[Any] = []
    monkeypatch.setattr(pool_factory, "template_unsupported",
                        lambda settings: asked.append(settings) or "no clone here")
    pool, loop = real_process_pool(tmp_path, monkeypatch, spawn=spawn)
    pool.workers.factory.start_template()
    assert TemplateDouble.made == [] and pool.workers.factory.spec.template is None
    assert asked == [pool.settings]
    loop.close()


def test_test_doubles_never_start_a_template(make, monkeypatch):

    TemplateDouble.made = []
    monkeypatch.setattr(pool_factory, "WorkerTemplate", TemplateDouble)
    monkeypatch.setattr(pool_factory, "template_unsupported", lambda settings: "")
    h = make(initial_size=1)
    h.pool.start()
    assert TemplateDouble.made == [] and h.pool.workers.factory.spec.template is None


def test_terminate_waits_until_one_deadline_for_every_worker(make, monkeypatch):
    import sidecar.pool.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: 1000.0)
    h = started(make, initial_size=2)
    template = FakeTemplate()
    factory = h.pool.workers.factory
    factory.spec = dataclasses.replace(factory.spec, template=template)
    waited: list[float] = []
    for process in h.processes:
        process.wait = waited.append
    stack_dir = h.pool.workers.factory.stack_dir
    open(os.path.join(stack_dir, "worker-9.stack"), "w").close()
    h.pool.terminate(3.0)
    assert template.closed == [1003.0] and waited == [1003.0, 1003.0]
    assert not os.path.exists(stack_dir)


def test_terminate_waits_two_seconds_by_default(make, monkeypatch):
    import sidecar.pool.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: 50.0)
    h = started(make, initial_size=1)
    waited: list[float] = []
    h.processes[0].wait = waited.append
    h.pool.terminate()
    assert waited == [52.0]


def test_terminate_tolerates_a_stack_file_removed_meanwhile(make, monkeypatch):
    import pathlib

    h = started(make, initial_size=1)
    stack_dir = h.pool.workers.factory.stack_dir
    ghost = pathlib.Path(stack_dir, "worker-1.stack")
    ghost.touch()
    real_glob = pathlib.Path.glob

    def glob_then_remove(self, pattern):
        found = list(real_glob(self, pattern))
        for path in found:
            path.unlink()  # gone before terminate unlinks it
        return iter(found)

    monkeypatch.setattr(pathlib.Path, "glob", glob_then_remove)
    h.pool.terminate(0.0)
    assert not os.path.exists(stack_dir)


def test_at_the_restart_limit_the_queue_is_answered_with_the_limit(make):
    h = started(make, initial_size=1, max_restarts=1, restart_window=10.0)
    [process] = h.processes
    running, running_sink = submit(h, "a")
    queued, queued_sink = submit(h, "b")
    process.die(-signal.SIGKILL)
    assert error_of(running_sink)["kind"] == protocol.CRASHED
    error = error_of(queued_sink)
    assert error["kind"] == protocol.UNAVAILABLE
    assert error["message"].startswith("workers keep dying: the restart limit of 1 per 10s "
                                       "is reached; next start in ")


def test_a_failed_start_while_shutting_down_answers_the_queue(make):
    h = make(initial_size=1)
    h.pool.start()
    [process] = h.processes
    call, sink = submit(h)
    h.pool.begin_shutdown()
    process.die(1)  # it never got ready: nothing is coming any more
    assert error_of(sink)["kind"] == protocol.UNAVAILABLE
    assert error_of(sink)["message"].startswith("no Python worker could be started")


def test_the_read_of_the_pipe_on_exit_is_bounded(make):
    h = started(make, initial_size=1)
    [process] = h.processes
    reads: list[int] = []

    def endless():  # a child of the worker keeps the pipe open and writing
        reads.append(1)
        return [pack_raw({"op": "noise"})]

    process.reader.feed = endless
    process.exit = {"returncode": 0, "text": "exit code 0", "exit_code": 0}
    process.on_exit()
    assert len(reads) == 256 and process.reaped


def replies(sink: Sink) -> list[dict[str, Any]]:
    return [unpack_raw(data) for data in sink.replies]


def die_with_a_frame_unread(process: FakeProcess, frame: bytes, returncode: int) -> None:
    """The worker wrote ``frame`` and died; the pool sees the exit before it read the pipe."""
    process.reader.frames.append(frame)  # in the pipe, not yet read: no readable event ran
    text, details = describe_exit(returncode)
    process.exit = {"returncode": returncode, "text": text, **details}
    process.on_exit()


@pytest.mark.parametrize("returncode", [0, -signal.SIGKILL])
def test_a_reply_in_the_pipe_when_the_exit_is_seen_is_delivered_not_crashed(harness,
                                                                             returncode):
    h = harness
    h.pool.start()
    h.ready_all()
    [process] = h.processes
    call, sink = submit(h)
    assert h.worker(process).state == BUSY
    die_with_a_frame_unread(process, reply_ok(7), returncode)
    [reply] = replies(sink)
    assert reply.get("ok") is True and reply["value"] == 7, reply
    assert call.outcome is None and h.pool.counters["succeeded"] == 1
    assert protocol.CRASHED not in h.pool.errors_by_kind


def test_a_worker_that_dies_with_nothing_in_the_pipe_answers_crashed(harness):
    h = harness
    h.pool.start()
    h.ready_all()
    [process] = h.processes
    call, sink = submit(h)
    process.die(-signal.SIGKILL)
    [reply] = replies(sink)
    assert reply["error"]["kind"] == protocol.CRASHED and call.outcome == protocol.CRASHED


def test_after_terminate_the_set_starts_nothing_any_more(make):
    h = started(make, initial_size=1)
    h.pool.terminate(0.0)  # without begin_shutdown first: terminate itself closes the set
    before = len(h.processes)
    h.pool.workers.ensure_capacity()
    assert len(h.processes) == before and h.pool.workers.closing is True
