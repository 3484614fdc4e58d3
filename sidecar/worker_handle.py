"""The pool's view of one worker: its state, role, current call and what was observed of it.

Owns: the worker states and roles, one ``WorkerHandle`` per worker process (the process itself
is a ``sidecar.process.WorkerProcess``), its observations (score, timings, RSS, CPU, probes)
and its report in the pool's snapshot. Must not touch: the process's descriptors or signals
(``sidecar.process``), decisions about it (``sidecar.pool``, ``sidecar.lifecycle``, the
watchdog and recovery read and set its fields).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil

from sidecar.call import Call
from sidecar.loop import Timer
from sidecar.pool_settings import PoolSettings
from sidecar.process import WorkerProcess
from sidecar.score import HealthScore
from sidecar.spawn_policy import MEMBER, SPARE

STARTING, IDLE, BUSY, CHECKING, STOPPING = "starting", "idle", "busy", "checking", "stopping"
STATES = (STARTING, IDLE, BUSY, CHECKING, STOPPING)

__all__ = ["STARTING", "IDLE", "BUSY", "CHECKING", "STOPPING", "STATES", "MEMBER", "SPARE",
           "WorkerHandle"]


class WorkerHandle:
    """The pool's view of one worker process, and what has been observed of it."""

    def __init__(self, wid: int, role: str, process: WorkerProcess, settings: PoolSettings,
                 now: float, clock: Callable[[], float]) -> None:
        self.id = wid
        self.role = role
        self.process = process
        self.pid = process.pid
        self.reader = process.reader
        self.state = STARTING
        self.call: Call | None = None
        self.calls = 0
        self.spawned_at = now
        self.ready_at = 0.0
        self.last_used = 0.0
        self.kill_timer: Timer | None = None
        self.start_timer: Timer | None = None
        self.stop_reason = ""
        self.preload_errors: list[str] = []
        self.drain_after_call = ""       # reason: stop once the current call is answered
        self.recycle_after_call = ""     # reason: arrange a replacement after the current call
        self.recycle_when_ready = ""     # reason: it started before a renewal (code edited)
        self.tainted = ""                # reason: its last call left code running; no more calls
        self.threads_at_ready = 0        # kernel thread count before any call ran in it
        self.killing = False
        self.stack_requested = False     # the watchdog asked for its stack before a kill
        self.replaced_by: int | None = None
        self.replaces: WorkerHandle | None = None
        self.max_calls = settings.max_calls + (
            random.randint(0, settings.max_calls_jitter) if settings.max_calls_jitter else 0)
        self.score = HealthScore(settings.score, clock=clock)
        # observations
        self.wall_ms: deque[float] = deque(maxlen=100)
        self.cpu_ms: deque[float] = deque(maxlen=100)
        self.busy_seconds = 0.0
        self.rss = 0
        self.rss_at = 0.0
        self.rss_baseline = 0           # after the first call (as loky measures it)
        self.cpu_seen = 0.0             # process CPU seconds at the last look (hang detection)
        self.cpu_seen_at = 0.0
        self.bench_baseline = 0.0       # seconds, measured at warm-up
        self.bench_last = 0.0
        self.ping_ms = 0.0
        self.ping_failed = False
        self.hung_for = 0.0             # seconds busy without CPU progress (watchdog)
        self.progress_call: Call | None = None
        self.probe_done: Callable[[dict[str, Any] | None], None] | None = None
        self.probe_timer: Timer | None = None
        self.status = "UNKNOWN"         # the composite health status (sidecar.health)
        self.status_detail = ""
        self.last_failure: dict[str, Any] | None = None
        self._ps: psutil.Process | None = None

    def describe(self) -> str:
        return f"worker {self.id} (pid {self.pid})"

    @property
    def exit(self) -> dict[str, Any] | None:
        """How its process ended (None while it runs); see ``WorkerProcess.poll_exit``."""
        return self.process.exit

    @property
    def ps(self) -> psutil.Process:
        if self._ps is None:
            self._ps = psutil.Process(self.pid)
        return self._ps

    def sample_rss(self, now: float) -> int:
        try:
            self.rss = self.ps.memory_info().rss
        except psutil.Error:
            return self.rss
        self.rss_at = now
        return self.rss

    def cpu_seconds(self) -> float | None:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system + times.children_user + times.children_system

    def report(self, now: float) -> dict[str, Any]:
        """What the health op and diagnostics show of this worker."""
        w = self
        return {"id": w.id, "pid": w.pid, "role": w.role, "state": w.state,
                "status": w.status, "status_detail": w.status_detail,
                "score": w.score.score, "calls": w.calls, "rss": w.rss,
                "age": now - w.spawned_at,
                "last_used_ago": (now - w.last_used) if w.last_used else None,
                "success_rate": w.score.success_rate(),
                "mean_execution_ms": w.score.mean_execution_ms(),
                "last_failure": w.last_failure, "preload_errors": w.preload_errors,
                "ping_ms": w.ping_ms or None,
                "bench_ratio": (w.bench_last / w.bench_baseline
                                if w.bench_last and w.bench_baseline else None)}
