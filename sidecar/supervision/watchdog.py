"""The watchdog: scheduled checks that gather observations and hand verdicts to recovery.

Owns: the three schedules (quick, deep, resource), which workers may be probed, and turning
observations into a composite verdict per worker (``sidecar.supervision.health``). Must not touch:
user calls. Only idle workers are pinged or benchmarked, and only when another member is idle too
(or the worker is a warm spare), so a check never takes a worker a call could have used. A
worker that served a call within the quick interval has just proved it is alive and is not
pinged. A busy worker is judged by its call's deadline (the pool) and by CPU progress: busy
with no CPU time gained for ``hang-after`` means stuck (sleeping, blocked on a lock, waiting in
C); a busy loop gains CPU and is left to its timeout, so heavy load is never a false alarm.
Crash detection does not live here: it is immediate (pidfd) in the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.loop import Loop, Timer
from sidecar.pool.call import Call
from sidecar.pool.events import WorkerExited, WorkerReady, route
from sidecar.pool.local import BUSY, CHECKING, IDLE, SPARE, STOPPING, Pool, WorkerHandle
from sidecar.supervision.health import HEALTHY, CompositeHealthCheck, HealthSettings
from sidecar.supervision.recovery import RecoveryOrchestrator
from sidecar.supervision.resources import ResourceMonitor

log = logging.getLogger("py3sidecar.watchdog")


@dataclass(frozen=True)
class WatchdogSettings:
    enabled: bool = True
    quick_interval: float = 5.0
    deep_interval: float = 30.0
    resource_interval: float = 60.0
    bench_rounds: int = 1
    baseline_rounds: int = 3


@dataclass
class Progress:
    """The watchdog's own record of a busy worker's CPU time, for the hang check."""
    call: Call          # the call it was measured for (a new call starts afresh)
    cpu: float          # the worker's CPU seconds at the last gain
    at: float           # when that gain was seen (the call's start at first)


class Watchdog:
    def __init__(self, loop: Loop, pool: Pool, recovery: RecoveryOrchestrator,
                 resources: ResourceMonitor, settings: WatchdogSettings,
                 health: HealthSettings) -> None:
        self.loop = loop
        self.pool = pool
        self.recovery = recovery
        self.resources = resources
        self.settings = settings
        self.health = health
        self.composite = CompositeHealthCheck()
        self.timers: list[Timer] = []
        self.progress: dict[int, Progress] = {}  # worker id -> CPU progress of its call
        self.counters = {"quick": 0, "deep": 0, "resource": 0, "pings": 0, "ping_failures": 0,
                         "benchmarks": 0, "evaluations": 0, "findings": 0}
        pool.listen(route({WorkerReady: self.on_worker_ready,
                           WorkerExited: self.on_worker_exited}))

    def start(self) -> None:
        if not self.settings.enabled:
            return
        for interval, check in ((self.settings.quick_interval, self.quick_check),
                                (self.settings.deep_interval, self.deep_check),
                                (self.settings.resource_interval, self.resource_check)):
            self.schedule(interval, check)

    def schedule(self, interval: float, check: Callable[[], None]) -> None:
        def fire() -> None:
            if self.pool.closing:
                return
            self.schedule(interval, check)
            check()
        self.timers.append(self.loop.call_later(interval, fire))
        if len(self.timers) > 16:
            self.timers = [t for t in self.timers if not t.cancelled]

    def stop(self) -> None:
        for timer in self.timers:
            timer.cancel()

    def on_worker_ready(self, event: WorkerReady) -> None:
        worker = self.pool.workers.get(event.worker)
        if worker is None:
            return
        self.evaluate(worker)
        # The warm-up baseline, taken only when nobody is waiting for this worker.
        if self.settings.enabled and not self.pool.queue and self.may_probe(worker):
            self.benchmark(worker, self.settings.baseline_rounds)

    def on_worker_exited(self, event: WorkerExited) -> None:
        self.progress.pop(event.worker, None)

    # ------------------------------------------------------------ which workers
    def may_probe(self, worker: WorkerHandle) -> bool:
        if worker.state != IDLE or worker.exit is not None:
            return False
        if worker.role == SPARE:
            return True
        # Another worker free now (idle, a warm spare, or busy only with a sub-millisecond
        # probe) can take a call that arrives while this one answers.
        return any(w is not worker and w.state in (IDLE, CHECKING)
                   for w in self.pool.workers.values())

    def resting(self, worker: WorkerHandle, now: float) -> bool:
        """Not used for a quick interval: under load, workers are never probed at all (a
        worker that just answered a call has proved itself)."""
        return now - max(worker.last_used, worker.ready_at) >= self.settings.quick_interval

    # ------------------------------------------------------------ the three checks
    def quick_check(self) -> None:
        self.counters["quick"] += 1
        now = self.loop.clock()
        for worker in list(self.pool.workers.values()):
            if worker.state == BUSY:
                self.judge_progress(worker, now)
            elif self.may_probe(worker) and self.resting(worker, now):
                self.ping(worker)
        self.recovery.tick()

    def deep_check(self) -> None:
        self.counters["deep"] += 1
        now = self.loop.clock()
        for worker in list(self.pool.workers.values()):
            if self.may_probe(worker) and self.resting(worker, now):
                self.benchmark(worker, self.settings.bench_rounds
                               if worker.bench_baseline else self.settings.baseline_rounds)

    def resource_check(self) -> None:
        self.counters["resource"] += 1
        self.resources.check()
        for worker in list(self.pool.workers.values()):
            if worker.exit is None and worker.state != STOPPING:
                self.evaluate(worker)

    # ------------------------------------------------------------ observations
    def ping(self, worker: WorkerHandle) -> None:
        self.counters["pings"] += 1
        started = self.loop.clock()

        def answered(reply: dict[str, Any]) -> None:
            worker.observe_probe(True, (self.loop.clock() - started) * 1000)

        self.probe(worker, "ping", self.health.ping_timeout, answered)

    def benchmark(self, worker: WorkerHandle, rounds: int) -> None:
        self.counters["benchmarks"] += 1

        def answered(reply: dict[str, Any]) -> None:
            worker.observe_bench(float(reply.get("seconds") or 0.0))

        self.probe(worker, "bench", max(self.health.ping_timeout, 2.0), answered,
                   rounds=rounds)

    def probe(self, worker: WorkerHandle, op: str, deadline: float,
              answered: Callable[[dict[str, Any]], None], **extra: Any) -> None:
        """Send a probe; an answer is recorded by ``answered``, silence marks the worker."""
        def done(reply: dict[str, Any] | None) -> None:
            worker.observe_probe(reply is not None)
            if reply is None:
                self.counters["ping_failures"] += 1
            else:
                answered(reply)
            self.evaluate(worker)

        self.pool.probe(worker, op, deadline, done, **extra)

    def judge_progress(self, worker: WorkerHandle, now: float) -> None:
        call = worker.call
        if call is None:
            return
        cpu = worker.cpu_seconds()
        if cpu is None:
            return
        seen = self.progress.get(worker.id)
        if seen is None or seen.call is not call:
            seen = self.progress[worker.id] = Progress(call, cpu, call.started_at)
        elif cpu - seen.cpu > 0.01:
            seen.cpu, seen.at = cpu, now
        worker.observe_hang(now - seen.at)
        if worker.hung_for >= self.health.hang_after:
            self.evaluate(worker)

    # ------------------------------------------------------------ verdicts
    def evaluate(self, worker: WorkerHandle) -> None:
        # A worker that failed a probe is already out of service (state "stopping") but still
        # needs its verdict: the stack capture and the kill.
        if worker.exit is not None or worker.killing or (
                worker.state == STOPPING and not worker.ping_failed):
            return
        self.counters["evaluations"] += 1
        result = self.composite.check(worker, self.health)
        previous = worker.note_status(result.status, result.detail)
        if result.status != previous and result.status != HEALTHY:
            log.warning("%s is %s: %s", worker.describe(), result.status, result.detail)
        if result.status == "DEGRADED" and previous == "DEGRADED":
            worker.score.record_failure("other")  # slow twice in a row costs it score
        if result.requires_action:
            self.counters["findings"] += 1
            self.recovery.on_finding(worker, result.status, result.detail)
        elif worker.score.should_replace():
            self.counters["findings"] += 1
            self.recovery.on_finding(worker, "LOW_SCORE",
                                     f"health score {worker.score.score} below "
                                     f"{worker.score.config.replace_threshold}")
