"""Covers: sidecar.supervision.watchdog, bridge.protocol, bridge.codec, sidecar.config.model,
sidecar.config.settings, sidecar.pool.call, sidecar.pool.events, sidecar.pool.local,
sidecar.supervision.health, sidecar.supervision.recovery, sidecar.supervision.resources.

The watchdog's state machine (sidecar/supervision/watchdog.py): observations -> verdict ->
recovery's action, on a real pool, loop and recovery with fake processes and a fake clock.

A worker's CPU time and RSS are what the kernel would report; here the test sets them (the
``cpu_seconds`` and ``rss`` test doubles), because the fake processes have no kernel accounting.
"""

from __future__ import annotations

import signal

import pytest

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.config.model import ScalingConfig
from sidecar.config.settings import overload_thresholds
from sidecar.pool.call import Call
from sidecar.pool.events import WorkerRecycled
from sidecar.pool.local import BUSY, CHECKING, IDLE, SPARE, STOPPING
from sidecar.supervision.health import HEALTHY, HealthSettings
from sidecar.supervision.recovery import FailureType, RecoveryOrchestrator, RecoverySettings
from sidecar.supervision.resources import ResourceMonitor
from sidecar.supervision.watchdog import Watchdog, WatchdogSettings

from ..pool_doubles import PoolHarness, Sink, reply_ok

MiB = 1 << 20
LOCK_STACK = ('Current thread 0x00007f (most recent call first):\n'
              '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n'
              '  File "<user>", line 3 in run\n')


class Rig:
    """Pool + recovery + watchdog, wired as ``sidecar.service.supervision`` wires them."""

    def __init__(self, tmp_path, health: HealthSettings | None = None, **pool: object) -> None:
        self.h = PoolHarness(tmp_path, **pool)
        self.recovery = RecoveryOrchestrator(self.h.pool, RecoverySettings())
        self.health = health or HealthSettings(ping_timeout=1.0, hang_after=8.0)
        resources = ResourceMonitor(self.h.pool, **overload_thresholds(ScalingConfig()))
        self.watchdog = Watchdog(self.h.loop, self.h.pool, self.recovery, resources,
                                 WatchdogSettings(), self.health)
        self.h.pool.start()
        self.h.ready_all()
        self.answer_probes()  # the warm-up benchmark a worker gets when another is free
        self.watchdog.start()

    def answer_probes(self) -> None:
        for worker in list(self.h.pool.workers.values()):
            if worker.state == CHECKING:
                worker.process.send(pack_raw({"ok": True, "seconds": 0.001}))

    def submit(self, timeout: float = 300.0) -> tuple[Call, Sink]:
        sink = Sink()
        call = Call("r", b"run", timeout, sink, self.h.clock())
        self.h.pool.submit(call)
        return call, sink

    def close(self) -> None:
        self.watchdog.stop()
        self.h.close()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


def fake_cpu(worker, seconds: list[float]) -> None:
    worker.cpu_seconds = lambda: seconds[0]  # test double for the kernel's CPU accounting


def test_a_busy_worker_without_cpu_progress_is_stopped_its_call_answered_crashed(rig):
    h = rig.h
    call, sink = rig.submit()
    [worker] = h.pool.workers.values()
    worker.process.stack = LOCK_STACK
    fake_cpu(worker, [3.0])
    h.advance(5.0)  # quick check: 5 s without CPU gain, under hang-after (8 s)
    assert worker.state == BUSY and sink.replies == [] and worker.hung_for == pytest.approx(5.0)
    h.advance(5.0)  # 10 s: stuck
    error = unpack_raw(sink.replies[0])["error"]
    assert error["kind"] == protocol.CRASHED and "threading.py" in error["traceback"]
    assert worker.state == STOPPING and worker.process.signals == [signal.SIGTERM]
    [record] = rig.recovery.records
    assert record.type is FailureType.DEADLOCK and record.worker == worker.id
    assert worker.last_failure["type"] == FailureType.DEADLOCK  # through the handle's verb


def test_a_busy_loop_gains_cpu_and_is_left_to_its_timeout(rig):
    h = rig.h
    call, sink = rig.submit()
    [worker] = h.pool.workers.values()
    cpu = [1.0]
    fake_cpu(worker, cpu)
    for _ in range(6):  # 30 s of checks, always a little CPU gained
        cpu[0] += 0.5
        h.advance(5.0)
    assert sink.replies == [] and worker.state == BUSY and worker.hung_for < 8.0
    assert not rig.recovery.records
    worker.process.send(reply_ok())
    assert unpack_raw(sink.replies[0])["ok"] is True


def test_progress_is_measured_per_call_a_new_call_starts_afresh(rig):
    h = rig.h
    call, sink = rig.submit()
    [worker] = h.pool.workers.values()
    fake_cpu(worker, [2.0])
    h.advance(5.0)
    worker.process.send(reply_ok())
    h.clock.now += 4.0  # idle a while; the next call starts its own measure
    second, second_sink = rig.submit()
    h.advance(5.0)  # 5 s into the new call (9 s since the first look): not hung
    assert worker.hung_for == pytest.approx(5.0) and second_sink.replies == []
    assert rig.watchdog.progress[worker.id].call is second


def test_an_idle_worker_that_does_not_answer_a_ping_is_stopped_and_replaced(tmp_path):
    r = Rig(tmp_path, initial_size=2)
    try:
        h = r.h
        h.clock.now += 5.0  # both rested a quick interval since they got ready
        h.advance(5.0)
        first, second = h.processes
        assert [p.written[-1] for p in (first, second)] == [pack_raw({"op": "ping"})] * 2
        h.clock.now += 0.002
        first.send(b"\x81\xa2ok\xc3")
        h.advance(1.5)  # second's ping deadline passes
        w1 = h.worker(first)
        assert w1.state == IDLE and w1.ping_ms == pytest.approx(2.0) and w1.status == HEALTHY
        assert second.signals == [signal.SIGTERM]
        [record] = r.recovery.records
        assert record.type is FailureType.HANG and "ping" in record.detail
        assert len(h.processes) == 3  # the replacement
    finally:
        r.close()


def test_only_free_workers_are_probed(rig, tmp_path_factory):
    [alone] = rig.h.pool.workers.values()
    assert not rig.watchdog.may_probe(alone)  # nobody could take a call meanwhile
    r = Rig(tmp_path_factory.mktemp("spare"), initial_size=1, spares=1)
    try:
        member = next(w for w in r.h.pool.workers.values() if w.role != SPARE)
        spare = next(w for w in r.h.pool.workers.values() if w.role == SPARE)
        assert r.watchdog.may_probe(member) and r.watchdog.may_probe(spare)
        assert spare.bench_baseline == pytest.approx(0.001)  # its warm-up baseline
        r.submit()
        assert member.state == BUSY and not r.watchdog.may_probe(member)
    finally:
        r.close()


def test_memory_high_recycles_an_idle_worker_now_and_a_busy_one_after_its_call(tmp_path):
    r = Rig(tmp_path, health=HealthSettings(memory_limit=100 * MiB), initial_size=2)
    try:
        h = r.h
        call, sink = r.submit()
        busy = next(w for w in h.pool.workers.values() if w.state == BUSY)
        idle = next(w for w in h.pool.workers.values() if w.state == IDLE)
        busy.rss = idle.rss = 200 * MiB  # test double: what psutil would read
        r.watchdog.resource_check()
        assert busy.recycle_after_call and busy.state == BUSY  # its call runs on
        assert [e.worker for e in h.events_of(WorkerRecycled)] == [idle.id]
        busy.process.send(reply_ok())
        assert unpack_raw(sink.replies[0])["ok"] is True
        assert [e.worker for e in h.events_of(WorkerRecycled)] == [idle.id, busy.id]
        assert [rec.type for rec in r.recovery.records] == [FailureType.MEMORY_LEAK] * 2
    finally:
        r.close()


@pytest.mark.parametrize(("kind", "cause"), [
    (protocol.CRASHED, FailureType.PROCESS_CRASH),
    (protocol.TIMEOUT, FailureType.HANG),
    (protocol.INTERNAL, FailureType.HANG),
])
def test_a_low_score_recycles_the_worker_once_classified_by_its_last_failure(
        rig, kind, cause):
    [worker] = rig.h.pool.workers.values()
    while not worker.score.should_replace():
        worker.score.record_failure(kind)
    rig.watchdog.evaluate(worker)
    rig.watchdog.evaluate(worker)  # judged again before it is gone: acted on once
    assert [e.worker for e in rig.h.events_of(WorkerRecycled)] == [worker.id]
    [record] = rig.recovery.records
    assert record.type is cause and "health score" in record.detail
