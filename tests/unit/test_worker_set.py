"""The worker set (sidecar/pool/lifecycle.py) on its own, against a recording ``PoolSide``, and
the pool composed of it (sidecar/pool/local.py).

A ``WorkerSet`` tells its pool only through ``PoolSide``: these tests drive one with fake
processes (``pool_doubles``) and no ``Pool`` at all, so a lifecycle verb that reached into the
pool's state would fail here.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from pool_doubles import READY, FakeClock, FakeProcess, PoolHarness, Sink

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.lifecycle import WorkerSet
from sidecar.pool.local import BUSY, IDLE, SPARE, Pool, PoolSettings

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
