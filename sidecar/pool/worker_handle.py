"""The pool's view of one worker: its state, role, current call and what was observed of it.

Owns: the worker states and roles, one ``WorkerHandle`` per worker process (the process itself
is a ``sidecar.process.spawn.WorkerProcess``), its observations (score, timings, RSS, CPU, probes)
and its report in the pool's snapshot. Must not touch: the process's descriptors or signals
(``sidecar.process.spawn``), decisions about it (``sidecar.pool.local``,
``sidecar.pool.lifecycle``). The watchdog and recovery read its fields and report what they saw
through its ``observe_*`` and
``note_*`` verbs; what they track only for themselves (CPU progress, a stack requested) stays
in their own objects.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil

from sidecar.loop import Timer
from sidecar.platform.procfs import OutsideView, outside_view
from sidecar.pool.call import Call
from sidecar.pool.settings import PoolSettings
from sidecar.pool.spawn_policy import MEMBER, SPARE
from sidecar.pool.states import (
    BUSY,
    CHECKING,
    IDLE,
    READY_STATES,
    STARTING,
    STATES,
    STOPPING,
    WorkerState,
)
from sidecar.process.spawn import WorkerProcess
from sidecar.supervision.score import HealthScore

__all__ = ["WorkerState", "STARTING", "IDLE", "BUSY", "CHECKING", "STOPPING", "STATES",
           "READY_STATES",
           "MEMBER", "SPARE", "WorkerHandle"]


class WorkerHandle:
    """The pool's view of one worker process, and what has been observed of it."""

    def __init__(self, wid: int, role: str, process: WorkerProcess, settings: PoolSettings,
                 now: float, clock: Callable[[], float]) -> None:
        self.id = wid
        self.role = role
        self.process = process
        self.pid = process.pid
        self.reader = process.reader
        self.state: WorkerState = STARTING
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
        self.outside: OutsideView | None = None  # its /proc files, read at every reply
        self.killing = False
        self.timed_out = False           # its call passed the deadline: counted by expire()
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
        self.bench_baseline = 0.0       # seconds, measured at warm-up
        self.bench_last = 0.0
        self.ping_ms = 0.0
        self.ping_failed = False
        self.hung_for = 0.0             # seconds busy without CPU progress (watchdog)
        self.probe_done: Callable[[dict[str, Any] | None], None] | None = None
        self.probe_timer: Timer | None = None
        self.status = "UNKNOWN"         # the composite health status (sidecar.supervision.health)
        self.status_detail = ""
        self.last_failure: dict[str, Any] | None = None
        self._ps: psutil.Process | None = None

    # ------------------------------------------------------------ what the policies saw
    def observe_probe(self, answered: bool, ping_ms: float | None = None) -> None:
        """A watchdog probe's outcome; ``ping_ms`` when it was a ping that answered."""
        self.ping_failed = not answered
        if ping_ms is not None:
            self.ping_ms = ping_ms

    def observe_bench(self, seconds: float) -> None:
        """The first benchmark is its baseline, later ones are compared with it."""
        if not self.bench_baseline:
            self.bench_baseline = seconds
        else:
            self.bench_last = seconds

    def observe_hang(self, seconds: float) -> None:
        """How long its current call has gained no CPU time (the watchdog's hang check)."""
        self.hung_for = seconds

    def note_status(self, status: str, detail: str) -> str:
        """The composite health verdict; returns the previous status."""
        previous, self.status, self.status_detail = self.status, status, detail
        return previous

    def note_failure(self, record: dict[str, Any]) -> None:
        """The last failure recovery recorded for it (shown in its report)."""
        self.last_failure = record

    def left_behind(self) -> str:
        """The kernel's count, which no thread in the worker can forge: more threads than it
        had when ready, or any child, means its call's code may still run
        (``sidecar.worker.isolation``). Empty when nothing is seen."""
        threads, children = (self.outside.read() if self.outside is not None
                             else outside_view(self.pid))
        extra = threads - self.threads_at_ready
        if extra > 0 or children > 0:
            return (f"the kernel counts {max(extra, 0)} more thread(s) than it started with "
                    f"and {max(children, 0)} child process(es)")
        return ""

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
                "ping_ms": w.ping_ms or None, "spawned": w.process.spawned,
                "bench_ratio": (w.bench_last / w.bench_baseline
                                if w.bench_last and w.bench_baseline else None)}
