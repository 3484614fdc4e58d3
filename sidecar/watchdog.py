"""The watchdog: scheduled checks that gather observations and hand verdicts to recovery.

Owns: the three schedules (quick, deep, resource), which workers may be probed, and turning
observations into a composite verdict per worker (``sidecar.health``). Must not touch: user
calls. Only idle workers are pinged or benchmarked, and only when another member is idle too
(or the worker is a warm spare), so a check never takes a worker a call could have used. A
worker that served a call within the quick interval has just proved it is alive and is not
pinged. A busy worker is judged by its call's deadline (the pool) and by CPU progress: busy
with no CPU time gained for ``hang-after`` means stuck (sleeping, blocked on a lock, waiting in
C); a busy loop gains CPU and is left to its timeout, so heavy load is never a false alarm.
Crash detection does not live here: it is immediate (pidfd) in the pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sidecar.health import HEALTHY, CompositeHealthCheck, HealthSettings
from sidecar.pool import BUSY, CHECKING, IDLE, SPARE
from sidecar.recovery import RecoveryOrchestrator
from sidecar.resources import ResourceMonitor

log = logging.getLogger("py3sidecar.watchdog")


@dataclass(frozen=True)
class WatchdogSettings:
    enabled: bool = True
    quick_interval: float = 5.0
    deep_interval: float = 30.0
    resource_interval: float = 60.0
    bench_rounds: int = 1
    baseline_rounds: int = 3


class Watchdog:
    def __init__(self, loop: Any, pool: Any, recovery: RecoveryOrchestrator,
                 resources: ResourceMonitor, settings: WatchdogSettings,
                 health: HealthSettings) -> None:
        self.loop = loop
        self.pool = pool
        self.recovery = recovery
        self.resources = resources
        self.settings = settings
        self.health = health
        self.composite = CompositeHealthCheck()
        self.timers: list[Any] = []
        self.counters = {"quick": 0, "deep": 0, "resource": 0, "pings": 0, "ping_failures": 0,
                         "benchmarks": 0, "evaluations": 0, "findings": 0}
        pool.subscribe(self.on_pool_event)

    def start(self) -> None:
        if not self.settings.enabled:
            return
        for interval, check in ((self.settings.quick_interval, self.quick_check),
                                (self.settings.deep_interval, self.deep_check),
                                (self.settings.resource_interval, self.resource_check)):
            self.schedule(interval, check)

    def schedule(self, interval: float, check: Any) -> None:
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

    def on_pool_event(self, event: str, info: dict[str, Any]) -> None:
        if event == "worker_ready":
            worker = self.pool.workers.get(info["worker"])
            if worker is None:
                return
            self.evaluate(worker)
            # The warm-up baseline, taken only when nobody is waiting for this worker.
            if self.settings.enabled and not self.pool.queue and self.may_probe(worker):
                self.benchmark(worker, self.settings.baseline_rounds)

    # ------------------------------------------------------------ which workers
    def may_probe(self, worker: Any) -> bool:
        if worker.state != IDLE or worker.exit is not None:
            return False
        if worker.role == SPARE:
            return True
        # Another worker free now (idle, a warm spare, or busy only with a sub-millisecond
        # probe) can take a call that arrives while this one answers.
        return any(w is not worker and w.state in (IDLE, CHECKING)
                   for w in self.pool.workers.values())

    def resting(self, worker: Any, now: float) -> bool:
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
            if worker.exit is None and worker.state != "stopping":
                self.evaluate(worker)

    # ------------------------------------------------------------ observations
    def ping(self, worker: Any) -> None:
        self.counters["pings"] += 1
        started = self.loop.clock()

        def answered(reply: dict[str, Any]) -> None:
            worker.ping_ms = (self.loop.clock() - started) * 1000

        self.probe(worker, "ping", self.health.ping_timeout, answered)

    def benchmark(self, worker: Any, rounds: int) -> None:
        self.counters["benchmarks"] += 1

        def answered(reply: dict[str, Any]) -> None:
            seconds = float(reply.get("seconds") or 0.0)
            if not worker.bench_baseline:
                worker.bench_baseline = seconds
            else:
                worker.bench_last = seconds

        self.probe(worker, "bench", max(self.health.ping_timeout, 2.0), answered,
                   rounds=rounds)

    def probe(self, worker: Any, op: str, deadline: float, answered: Any, **extra: Any) -> None:
        """Send a probe; an answer is recorded by ``answered``, silence marks the worker."""
        def done(reply: dict[str, Any] | None) -> None:
            worker.ping_failed = reply is None
            if reply is None:
                self.counters["ping_failures"] += 1
            else:
                answered(reply)
            self.evaluate(worker)

        self.pool.probe(worker, op, deadline, done, **extra)

    def judge_progress(self, worker: Any, now: float) -> None:
        call = worker.call
        if call is None:
            return
        cpu = worker.cpu_seconds()
        if cpu is None:
            return
        if getattr(worker, "progress_call", None) is not call:
            worker.progress_call = call
            worker.cpu_seen, worker.cpu_seen_at = cpu, call.started_at
        elif cpu - worker.cpu_seen > 0.01:
            worker.cpu_seen, worker.cpu_seen_at = cpu, now
        worker.hung_for = now - worker.cpu_seen_at
        if worker.hung_for >= self.health.hang_after:
            self.evaluate(worker)

    # ------------------------------------------------------------ verdicts
    def evaluate(self, worker: Any) -> None:
        # A worker that failed a probe is already out of service (state "stopping") but still
        # needs its verdict: the stack capture and the kill.
        if worker.exit is not None or worker.killing or (
                worker.state == "stopping" and not worker.ping_failed):
            return
        self.counters["evaluations"] += 1
        result = self.composite.check(worker, self.health)
        previous = worker.status
        worker.status, worker.status_detail = result.status, result.detail
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
