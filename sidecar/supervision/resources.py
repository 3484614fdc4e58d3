"""Resource monitor: CPU time and memory per execution, rolling windows, load and overload.

Owns: turning the pool's accumulators and per-worker observations into rates and windows
(utilization, mean queue wait, CPU per call, memory delta per call) and the overloaded flag.
Must not touch: processes (it reads what the pool recorded; RSS comes from psutil readings the
pool takes after calls and the watchdog takes on its resource check).

Why not psutil around every call: two /proc reads per call would cost more than the call's
whole round trip. CPU per call is measured inside the worker with ``time.process_time`` (exact,
sub-microsecond) and returned in the reply's fixed header; RSS is read at most once per
``rss_sample_interval`` per worker, so memory deltas are per call averaged over that window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadSample:
    utilization: float      # busy worker-seconds / available worker-seconds, 0..1
    mean_wait: float        # seconds calls spent queued before a worker took them
    calls: int              # calls started in the window


class LoadMeter:
    """Utilization and queue wait of a pool between two ``sample()`` calls."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.at = pool.clock()
        self.busy = self._busy_now()
        self.wait_total = pool.queue_wait_total
        self.wait_count = pool.queue_wait_count

    def _busy_now(self) -> float:
        now = self.pool.clock()
        running = sum(now - w.call.started_at for w in self.pool.workers.values()
                      if w.call is not None)
        return self.pool.busy_seconds_total + running

    def sample(self) -> LoadSample:
        pool = self.pool
        now = pool.clock()
        busy = self._busy_now()
        elapsed = max(now - self.at, 1e-9)
        capacity = max(pool.live_count(), 1) * elapsed
        calls = pool.queue_wait_count - self.wait_count
        waits = pool.queue_wait_total - self.wait_total
        # Calls still queued count with what they have waited so far.
        queued = [now - c.accepted_at for c in pool.queue]
        mean_wait = (waits + sum(queued)) / max(calls + len(queued), 1)
        sample = LoadSample(min(1.0, max(0.0, (busy - self.busy) / capacity)), mean_wait, calls)
        self.at, self.busy = now, busy
        self.wait_total, self.wait_count = pool.queue_wait_total, pool.queue_wait_count
        return sample


class ResourceMonitor:
    """Per-worker and pool resource figures, and the overloaded flag."""

    def __init__(self, pool: Any, *, overload_utilization: float,
                 overload_wait: float) -> None:
        # python3.scaling.scale-up-utilization / -wait
        # (sidecar.config.settings.overload_thresholds): "overloaded" is the load at which scaling
        # would add workers.
        self.pool = pool
        self.meter = LoadMeter(pool)
        self.overload_utilization = overload_utilization
        self.overload_wait = overload_wait
        self.last = LoadSample(0.0, 0.0, 0)
        self.overloaded = False
        self.memory_history: dict[int, tuple[int, int]] = {}  # worker -> (calls, rss)
        self.memory_delta: dict[int, float] = {}              # worker -> bytes per call

    def check(self) -> LoadSample:
        """Roll the window (the watchdog's resource check): sample RSS and load."""
        now = self.pool.clock()
        for worker in list(self.pool.workers.values()):
            if worker.exit is None:
                worker.sample_rss(now)
                self.roll_memory_window(worker)
        for gone in set(self.memory_history) - set(self.pool.workers):
            self.memory_history.pop(gone, None)
            self.memory_delta.pop(gone, None)
        self.last = self.meter.sample()
        self.overloaded = (self.last.utilization >= self.overload_utilization
                           and self.last.mean_wait >= self.overload_wait)
        return self.last

    def roll_memory_window(self, worker: Any) -> None:
        """RSS added per call between this resource check and the previous one."""
        previous = self.memory_history.get(worker.id)
        self.memory_history[worker.id] = (worker.calls, worker.rss)
        if previous is not None and worker.calls != previous[0]:
            self.memory_delta[worker.id] = ((worker.rss - previous[1])
                                            / (worker.calls - previous[0]))

    def worker_view(self, worker: Any) -> dict[str, Any]:
        cpu = list(worker.cpu_ms)
        wall = list(worker.wall_ms)
        return {
            "rss": worker.rss, "rss_baseline": worker.rss_baseline,
            "cpu_ms_mean": sum(cpu) / len(cpu) if cpu else None,
            "cpu_ms_total_window": sum(cpu),
            "wall_ms_mean": sum(wall) / len(wall) if wall else None,
            "cpu_share": (sum(cpu) / sum(wall)) if wall and sum(wall) > 0 else None,
            "memory_delta_per_call": self.memory_delta.get(worker.id),
            "busy_seconds": worker.busy_seconds,
        }

    def pool_view(self) -> dict[str, Any]:
        workers = [w for w in self.pool.workers.values() if w.exit is None]
        return {"rss_total": sum(w.rss for w in workers),
                "busy_seconds_total": self.pool.busy_seconds_total,
                "utilization": self.last.utilization, "mean_queue_wait": self.last.mean_wait,
                "calls_in_window": self.last.calls, "overloaded": self.overloaded}
