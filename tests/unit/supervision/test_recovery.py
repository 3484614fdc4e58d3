"""Covers: sidecar.supervision.recovery, bridge.protocol, bridge.codec, sidecar.pool.call,
sidecar.pool.events, sidecar.supervision.score.

Recovery's state machine (sidecar/supervision/recovery.py): pool events -> failure records,
back-off, escalation and its end; findings -> one action per worker. Real pool and loop, fake
processes and clock (``pool_doubles``)."""

from __future__ import annotations

import errno
import signal

import pytest

from bridge import protocol
from bridge.codec import unpack_raw
from sidecar.pool.call import Call
from sidecar.pool.events import CallTimedOut, WorkerExited
from sidecar.supervision.recovery import (
    FailureType,
    RecoveryOrchestrator,
    RecoverySettings,
    classify_stack,
)
from sidecar.supervision.score import NOT_THE_WORKERS_FAULT

from ..pool_doubles import PoolHarness, Sink

LOCK_STACK = ('Current thread 0x00007f (most recent call first):\n'
              '  File "/usr/lib/python3.11/threading.py", line 320 in acquire\n')
BUSY_STACK = ('Current thread 0x00007f (most recent call first):\n'
              '  File "<user>", line 3 in spin\n')


class Rig:
    def __init__(self, tmp_path, **pool: object) -> None:
        self.h = PoolHarness(tmp_path, **pool)
        self.recovery = RecoveryOrchestrator(self.h.pool, RecoverySettings(
            max_restart_attempts=3, escalation_timeout=60.0, resource_backoff_factor=4.0))
        self.escalations: list = []
        self.recovery.listeners.append(self.escalations.append)

    def types(self) -> list[FailureType]:
        return [r.type for r in self.recovery.records]


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.h.close()


def busy_worker(rig: Rig):
    rig.h.pool.start()
    rig.h.ready_all()
    sink = Sink()
    rig.h.pool.submit(Call("r", b"run", 300.0, sink, rig.h.clock()))
    [worker] = rig.h.pool.workers.values()
    return worker, sink


@pytest.mark.parametrize(("returncode", "rss", "expected"), [
    (-signal.SIGSEGV, 0, FailureType.PROCESS_CRASH),
    (3, 0, FailureType.PROCESS_CRASH),
    (-signal.SIGXCPU, 0, FailureType.RESOURCE_EXHAUSTION),        # its CPU limit
    (-signal.SIGKILL, 900 << 20, FailureType.RESOURCE_EXHAUSTION),  # near its memory limit
    (-signal.SIGKILL, 100 << 20, FailureType.PROCESS_CRASH),       # killed, far below it
])
def test_an_unexpected_exit_is_classified_from_the_typed_event(tmp_path, returncode, rss,
                                                                expected):
    r = Rig(tmp_path, max_memory=1024 << 20)
    try:
        worker, sink = busy_worker(r)
        worker.rss = rss  # test double: its last RSS sample
        worker.process.die(returncode)
        assert unpack_raw(sink.replies[0])["error"]["kind"] == protocol.CRASHED
        assert r.types() == [expected]
        assert r.recovery.records[0].worker == worker.id
    finally:
        r.h.close()


def test_an_expected_exit_is_no_failure(rig):
    rig.h.pool.start()
    rig.h.ready_all()
    [worker] = rig.h.pool.workers.values()
    rig.h.pool.recycle(worker, "renewal")  # a replacement starts; this one drains when ready
    rig.h.ready_all()
    worker.process.die(0)
    [exited] = [e for e in rig.h.events_of(WorkerExited) if e.worker == worker.id]
    assert exited.expected and not rig.recovery.records


def test_a_timed_out_call_is_recorded_as_deadlock_or_hang_from_its_stack(rig):
    worker, sink = busy_worker(rig)
    rig.h.pool.publish(CallTimedOut("primary", worker.id, worker.pid, LOCK_STACK))
    rig.h.pool.publish(CallTimedOut("primary", worker.id, worker.pid, BUSY_STACK))
    rig.h.pool.publish(CallTimedOut("primary", worker.id, worker.pid, ""))
    assert rig.types() == [FailureType.DEADLOCK, FailureType.HANG, FailureType.HANG]
    assert rig.recovery.records[0].stack == LOCK_STACK


def test_resource_exhaustion_stretches_the_back_off_until_a_worker_is_ready(rig):
    h = rig.h
    h.spawn_error = OSError(errno.EMFILE, "Too many open files")
    h.pool.start()
    assert rig.types() == [FailureType.RESOURCE_EXHAUSTION]
    assert h.pool.spawning.backoff_factor == 4.0
    h.spawn_error = None
    h.advance(0.4)  # the stretched back-off (0.1 s x 4)
    assert len(h.processes) == 1
    h.ready_all()
    assert h.pool.spawning.backoff_factor == 1.0


def test_consecutive_failed_starts_escalate_once_and_recovery_ends_it(rig):
    h = rig.h
    h.spawn_error = OSError(errno.ENOENT, "No such file or directory: 'python3'")
    h.pool.start()
    for _ in range(4):
        h.advance(h.pool.spawning.wait() + 0.001)
    assert h.pool.spawning.failures >= 4
    assert rig.types() == [FailureType.PROCESS_CRASH] * h.pool.spawning.failures
    [critical] = rig.escalations  # once, however many more starts fail
    assert critical.level == "CRITICAL" and "max-restart-attempts" in critical.message
    assert rig.recovery.escalated
    h.spawn_error = None
    h.advance(h.pool.spawning.wait() + 0.001)
    h.ready_all()
    assert not rig.recovery.escalated
    assert [e.level for e in rig.escalations] == ["CRITICAL", "INFO"]


def test_below_full_strength_for_the_escalation_timeout_escalates(rig):
    h = rig.h
    h.pool.start()  # its one worker never gets ready
    rig.recovery.tick()
    h.clock.now += 59.0
    rig.recovery.tick()
    assert not rig.escalations
    h.clock.now += 2.0
    rig.recovery.tick()
    [critical] = rig.escalations
    assert "below full strength (0 of 1 ready)" in critical.message


def test_the_restart_limit_escalates(tmp_path):
    r = Rig(tmp_path, max_restarts=2, restart_window=10.0)
    try:
        r.h.pool.start()
        for _ in range(2):
            r.h.ready_all()
            [live] = r.h.live()
            live.die(-signal.SIGKILL)
        assert r.recovery.escalated
        assert "python3.pool.max-restarts" in r.escalations[0].message
    finally:
        r.h.close()


def test_a_hung_worker_is_stopped_once_even_if_judged_again_before_its_stack_arrives(rig):
    worker, sink = busy_worker(rig)
    worker.process.defer_stack = True
    rig.recovery.on_finding(worker, "UNRESPONSIVE", "busy 90s with no CPU progress")
    rig.recovery.on_finding(worker, "UNRESPONSIVE", "busy 95s with no CPU progress")
    assert len(worker.process.stack_waiters) == 1 and sink.replies == []
    worker.process.stack = LOCK_STACK
    worker.process.stack_arrives()
    assert unpack_raw(sink.replies[0])["error"]["kind"] == protocol.CRASHED
    assert worker.process.signals == [signal.SIGTERM]
    assert rig.types() == [FailureType.DEADLOCK]


def test_low_score_causes_map_only_kinds_that_reach_a_score() -> None:
    # What reaches HealthScore.record_failure: the pool's ``crashed`` and ``timeout``, a
    # worker's error kinds (``internal``; the caller's own faults score nothing) and the
    # watchdog's ``other``. ``oom``, ``io`` and ``unresponsive`` are never recorded.
    can_occur = {protocol.CRASHED, protocol.TIMEOUT, protocol.INTERNAL, "other"}
    causes = RecoveryOrchestrator.LOW_SCORE_CAUSES
    assert set(causes) <= can_occur
    assert not set(causes) & NOT_THE_WORKERS_FAULT


DEADLOCK_STACK = """Current thread 0x00007f (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait
  File "/usr/lib/python3.11/threading.py", line 622 in wait
  File "<python3.execute #1>", line 2 in <module>
"""



HANG_STACK = """Current thread 0x00007f (most recent call first):
  File "<python3.execute #1>", line 2 in <module>
"""



def test_stack_classification():
    assert classify_stack(DEADLOCK_STACK) is FailureType.DEADLOCK
    assert classify_stack(HANG_STACK) is FailureType.HANG
    assert classify_stack("") is FailureType.HANG
