"""Recovery orchestrator: classify each failure, apply its strategy, bound it, escalate.

Owns: failure classification (PROCESS_CRASH, MEMORY_LEAK, DEADLOCK, HANG,
RESOURCE_EXHAUSTION), the strategy for each, the failure records (with the hung worker's
stack), and escalation: when workers cannot be kept running (``max-restart-attempts``
consecutive failed starts, the restart limit, or below full strength for
``escalation-timeout``) a CRITICAL event is published and the pool is reported UNHEALTHY until
it is back at full strength. Must not touch: processes directly (it calls the pool's verbs:
``kill``, ``recycle``, ``capture_stack``) or timers of its own (the watchdog ticks it).

Strategies:
- PROCESS_CRASH: the pool has already answered the call and promoted a spare; record it.
- MEMORY_LEAK: graceful replacement (after the current call).
- HANG / DEADLOCK: capture the stack, answer the in-flight call, kill, replace.
- RESOURCE_EXHAUSTION: back off harder before the next spawn (x4), no retry storm.
"""

from __future__ import annotations

import logging
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bridge import protocol
from sidecar.pool.events import (
    CallTimedOut,
    MemoryHigh,
    RestartLimit,
    SpawnFailed,
    WorkerExited,
    WorkerReady,
    route,
)
from sidecar.pool.worker_handle import WorkerHandle

if TYPE_CHECKING:  # the pool imports nothing from here; only its type is needed
    from sidecar.pool.local import Pool

log = logging.getLogger("py3sidecar.recovery")


class FailureType(StrEnum):
    PROCESS_CRASH = "PROCESS_CRASH"
    MEMORY_LEAK = "MEMORY_LEAK"
    DEADLOCK = "DEADLOCK"
    HANG = "HANG"
    RESOURCE_EXHAUSTION = "RESOURCE_EXHAUSTION"


@dataclass(frozen=True)
class RecoverySettings:
    max_restart_attempts: int = 5     # consecutive failed starts before escalating
    escalation_timeout: float = 60.0  # below full strength this long -> escalate
    resource_backoff_factor: float = 4.0


@dataclass
class FailureRecord:
    at: float
    type: FailureType
    worker: int | None
    pid: int | None
    detail: str
    stack: str = ""
    action: str = ""


@dataclass
class RecoveryEvent:
    at: float
    level: str          # CRITICAL, WARNING, INFO
    message: str
    details: dict[str, Any] = field(default_factory=dict)


_LOCK_WAITS = ("acquire", "wait", "join", "_wait_for_tstate_lock", "get")


def classify_stack(stack: str) -> FailureType:
    """DEADLOCK when the innermost frame of the main thread waits on a lock, else HANG."""
    lines = [line.strip() for line in stack.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Current thread") or line.startswith("Thread 0x"):
            frames = [f for f in lines[i + 1:i + 3] if f.startswith("File ")]
            if frames and any(f' in {name}' in frames[0] for name in _LOCK_WAITS):
                return FailureType.DEADLOCK
            break
    return FailureType.HANG


class RecoveryOrchestrator:
    def __init__(self, pool: Pool, settings: RecoverySettings,
                 clock: Callable[[], float] | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock or pool.clock
        self.records: deque[FailureRecord] = deque(maxlen=50)
        self.events: deque[RecoveryEvent] = deque(maxlen=50)
        self.escalated = False
        self.below_strength_since: float | None = None
        self.listeners: list[Callable[[RecoveryEvent], None]] = []
        self.failure_listeners: list[Callable[[FailureRecord], None]] = []  # alerts
        self.counts: dict[str, int] = {t.value: 0 for t in FailureType}
        self.stacks_requested: set[int] = set()  # worker ids: stopped once, not twice
        pool.listen(route({
            WorkerExited: self.on_worker_exited, SpawnFailed: self.on_spawn_failed,
            RestartLimit: self.on_restart_limit, CallTimedOut: self.on_call_timed_out,
            MemoryHigh: self.on_memory_high, WorkerReady: self.on_worker_ready}))

    # ------------------------------------------------------------ pool events
    def on_worker_exited(self, event: WorkerExited) -> None:
        self.stacks_requested.discard(event.worker)
        if event.expected:
            return
        kind, detail = self.classify_exit(event)
        self.record(kind, event.worker, event.pid, f"exited with {event.text}: {detail}",
                    action="answered its call; spare promoted or replacement spawned")

    def on_spawn_failed(self, event: SpawnFailed) -> None:
        kind = (FailureType.RESOURCE_EXHAUSTION if event.resource_exhaustion
                else FailureType.PROCESS_CRASH)
        self.record(kind, None, None, f"spawn failed: {event.message}",
                    action=f"retry in {event.retry_in:.2f}s")
        if kind is FailureType.RESOURCE_EXHAUSTION:
            self.pool.spawning.backoff_factor = self.settings.resource_backoff_factor
        if event.failures >= self.settings.max_restart_attempts:
            self.escalate(f"{event.failures} consecutive worker starts failed "
                          f"(python3.recovery.max-restart-attempts = "
                          f"{self.settings.max_restart_attempts}); last: {event.message}")

    def on_restart_limit(self, event: RestartLimit) -> None:
        self.escalate(f"{event.restarts} worker restarts within {event.window:g}s "
                      "(python3.pool.max-restarts): replacement paused")

    def on_call_timed_out(self, event: CallTimedOut) -> None:
        self.record(classify_stack(event.stack) if event.stack else FailureType.HANG,
                    event.worker, event.pid, "its call passed its timeout", stack=event.stack,
                    action="stack captured, call answered `timeout`, worker killed")

    def on_memory_high(self, event: MemoryHigh) -> None:
        self.record(FailureType.MEMORY_LEAK, event.worker, event.pid,
                    f"RSS {event.rss >> 20} MiB over the limit",
                    action="recycled after its current call")

    def on_worker_ready(self, event: WorkerReady) -> None:
        self.pool.spawning.backoff_factor = 1.0
        self.tick()

    def classify_exit(self, event: WorkerExited) -> tuple[FailureType, str]:
        if event.signal == signal.SIGXCPU:
            return FailureType.RESOURCE_EXHAUSTION, "killed by its CPU limit"
        limit = self.pool.settings.address_space_limit or self.pool.settings.max_memory
        if event.signal == signal.SIGKILL and limit and event.rss > 0.8 * limit:
            return FailureType.RESOURCE_EXHAUSTION, "killed near its memory limit (likely OOM)"
        return FailureType.PROCESS_CRASH, "the process died"

    # ------------------------------------------------------------ watchdog findings
    def on_finding(self, worker: WorkerHandle, status: str, detail: str) -> None:
        """The watchdog judged a worker; apply the strategy for what it found (once: a worker
        already on its way out is judged again by every check until it is gone)."""
        if worker.killing or worker.replaced_by is not None or worker.recycle_after_call:
            return
        if status == "MEMORY_HIGH":
            self.record(FailureType.MEMORY_LEAK, worker.id, worker.pid, detail,
                        action="graceful replacement after its current call")
            self.pool.recycle_when_free(worker, detail)
        elif status == "UNRESPONSIVE":
            self.stop_hung_worker(worker, detail)
        elif status == "LOW_SCORE":
            self.record(self.LOW_SCORE_CAUSES.get(worker.score.last_failure_kind,
                                                  FailureType.HANG),
                        worker.id, worker.pid, detail, action="graceful replacement")
            self.pool.recycle(worker, detail)

    # What a worker's score last fell for, among the kinds that reach a score (``crashed``
    # and ``timeout`` from the pool, ``internal`` from a worker's reply, ``other`` from the
    # watchdog); anything else reads as a hang in the making. No ``oom``/``io``: never recorded.
    LOW_SCORE_CAUSES = {protocol.CRASHED: FailureType.PROCESS_CRASH,
                        protocol.TIMEOUT: FailureType.HANG}

    def stop_hung_worker(self, worker: WorkerHandle, detail: str) -> None:
        if worker.id in self.stacks_requested:
            return
        self.stacks_requested.add(worker.id)
        self.pool.take_out_of_service(worker, detail)

        def finish(stack: str) -> None:
            kind = classify_stack(stack) if stack else FailureType.HANG
            call = worker.call
            if call is not None and not call.done:
                call.fail(protocol.CRASHED,
                          f"{worker.describe()} was stopped by the watchdog: {detail} "
                          f"({kind.value}); see the traceback for where it was stuck",
                          worker=worker.id, traceback=stack or None)
            self.record(kind, worker.id, worker.pid, detail, stack=stack,
                        action="stack captured, worker killed and replaced")
            self.pool.kill(worker, detail)

        self.pool.capture_stack(worker, finish)

    # ------------------------------------------------------------ bookkeeping
    def record(self, kind: FailureType, wid: int | None, pid: int | None, detail: str,
               stack: str = "", action: str = "") -> FailureRecord:
        rec = FailureRecord(self.clock(), kind, wid, pid, detail, stack, action)
        self.records.append(rec)
        self.counts[kind.value] += 1
        worker = self.pool.workers.get(rec.worker) if rec.worker is not None else None
        if worker is not None:
            worker.note_failure(asdict(rec))
        log.warning("failure %s on worker %s: %s -> %s", kind.value, rec.worker, detail,
                    action or "recorded")
        for listener in self.failure_listeners:
            try:
                listener(rec)
            except Exception:
                log.exception("failure record listener failed")
        return rec

    def publish(self, level: str, message: str, **details: Any) -> None:
        event = RecoveryEvent(self.clock(), level, message, details)
        self.events.append(event)
        log.log(logging.CRITICAL if level == "CRITICAL" else logging.INFO, "%s: %s", level,
                message)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("recovery event listener failed")

    def escalate(self, reason: str) -> None:
        if self.escalated:
            return
        self.escalated = True
        self.publish("CRITICAL", f"pool {self.pool.settings.name} escalated: {reason}",
                     pool=self.pool.settings.name)

    def tick(self) -> None:
        """Called by the watchdog and on every worker start: escalation by time, recovery."""
        now = self.clock()
        pool = self.pool
        if pool.closing:
            return
        if pool.ready_members() >= pool.target_size:
            self.below_strength_since = None
            if self.escalated:
                self.escalated = False
                self.publish("INFO", f"pool {pool.settings.name} recovered: "
                             f"{pool.ready_members()} workers ready")
            return
        if self.below_strength_since is None:
            self.below_strength_since = now
        elif now - self.below_strength_since >= self.settings.escalation_timeout:
            self.escalate(f"below full strength ({pool.ready_members()} of {pool.target_size} "
                          f"ready) for {now - self.below_strength_since:.0f}s "
                          "(python3.recovery.escalation-timeout)")

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "escalated": self.escalated,
            "failures_by_type": dict(self.counts),
            "recent_failures": [{**asdict(r), "seconds_ago": now - r.at,
                                 "stack": r.stack[-2000:]} for r in list(self.records)[-10:]],
            "events": [{**asdict(e), "seconds_ago": now - e.at} for e in self.events],
        }
