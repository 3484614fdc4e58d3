"""Health checks as small strategies, the composite that runs them, and the health report.

Owns: judging a worker from what has been observed of it (liveness, performance against its
own baseline, memory read by the sidecar with psutil) and the pool's aggregate status. Must
not touch: processes or timers. The watchdog (``sidecar.supervision.watchdog``) gathers observations
(ping and benchmark probes on idle workers only, RSS and CPU readings) and acts on verdicts.

Statuses, best to worst: HEALTHY, DEGRADED, MEMORY_HIGH, UNRESPONSIVE, UNHEALTHY, DEAD;
UNKNOWN until a worker has been observed.

Aggregate rule (``pool_status``), the first that holds:
- UNHEALTHY: no ready member, or recovery has escalated (restarts exhausted), or the circuit
  breaker is open;
- DEGRADED: fewer ready members than the target, a warm spare missing, any worker not HEALTHY
  (or UNKNOWN while starting), or the pool is flagged overloaded;
- HEALTHY otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

HEALTHY, DEGRADED, MEMORY_HIGH = "HEALTHY", "DEGRADED", "MEMORY_HIGH"
UNRESPONSIVE, UNHEALTHY, DEAD, UNKNOWN = "UNRESPONSIVE", "UNHEALTHY", "DEAD", "UNKNOWN"

SEVERITY = {HEALTHY: 0, UNKNOWN: 1, DEGRADED: 2, MEMORY_HIGH: 3, UNRESPONSIVE: 4, UNHEALTHY: 5,
            DEAD: 6}


@dataclass(frozen=True)
class CheckResult:
    status: str
    requires_action: bool = False
    priority: int = 0
    detail: str = ""


@dataclass(frozen=True)
class HealthSettings:
    ping_timeout: float = 1.0          # an idle worker must answer a ping within this
    hang_after: float = 60.0           # a busy worker with no CPU progress for this long hangs
    performance_factor: float = 5.0    # DEGRADED when the benchmark takes k x its own baseline
    memory_limit: int = 0              # MEMORY_HIGH above this RSS (bytes, 0: off)
    memory_growth_limit: int = 512 << 20  # MEMORY_HIGH above baseline + this (bytes, 0: off)


class ObservedWorker(Protocol):
    """What the checks read of a worker (``sidecar.pool.worker_handle.WorkerHandle`` has it; this
    policy may not import the handle, which reaches psutil and the process code)."""

    ping_failed: bool
    hung_for: float
    ready_at: float
    bench_baseline: float
    bench_last: float
    rss: int
    rss_baseline: int

    @property
    def exit(self) -> dict[str, Any] | None: ...


class HealthCheck(Protocol):
    name: str
    priority: int

    def check(self, worker: ObservedWorker, settings: HealthSettings) -> CheckResult: ...


class LivenessCheck:
    """The process is alive and its last ping was answered within the deadline."""

    name, priority = "liveness", 1

    def check(self, worker: ObservedWorker, settings: HealthSettings) -> CheckResult:
        if worker.exit is not None:
            return CheckResult(DEAD, True, self.priority, f"exited with {worker.exit['text']}")
        if getattr(worker, "ping_failed", False):
            return CheckResult(UNRESPONSIVE, True, self.priority,
                               f"no answer to a ping within {settings.ping_timeout:g}s")
        if getattr(worker, "hung_for", 0.0) >= settings.hang_after:
            return CheckResult(UNRESPONSIVE, True, self.priority,
                               f"busy for {worker.hung_for:.0f}s with no CPU progress")
        if not worker.ready_at:
            return CheckResult(UNKNOWN, False, self.priority, "starting")
        return CheckResult(HEALTHY, False, self.priority)


class PerformanceCheck:
    """A fixed benchmark run inside the worker, against that worker's own warm-up baseline."""

    name, priority = "performance", 3

    def check(self, worker: ObservedWorker, settings: HealthSettings) -> CheckResult:
        if not worker.bench_baseline or not worker.bench_last:
            return CheckResult(HEALTHY, False, self.priority, "no benchmark yet")
        ratio = worker.bench_last / worker.bench_baseline
        if ratio > settings.performance_factor:
            return CheckResult(DEGRADED, False, self.priority,
                               f"benchmark {ratio:.1f}x slower than its baseline")
        return CheckResult(HEALTHY, False, self.priority, f"benchmark {ratio:.2f}x baseline")


class MemoryCheck:
    """RSS read by the sidecar (psutil); no code runs in the worker for it."""

    name, priority = "memory", 2

    def check(self, worker: ObservedWorker, settings: HealthSettings) -> CheckResult:
        rss = worker.rss
        if settings.memory_limit and rss > settings.memory_limit:
            return CheckResult(MEMORY_HIGH, True, self.priority,
                               f"RSS {rss >> 20} MiB above the limit of "
                               f"{settings.memory_limit >> 20} MiB")
        base = worker.rss_baseline
        if settings.memory_growth_limit and base and rss - base > settings.memory_growth_limit:
            return CheckResult(MEMORY_HIGH, True, self.priority,
                               f"RSS grew {(rss - base) >> 20} MiB over its baseline of "
                               f"{base >> 20} MiB")
        return CheckResult(HEALTHY, False, self.priority)


class CompositeHealthCheck:
    """Runs every check; the worst status wins (ties: the lowest priority number)."""

    def __init__(self, checks: list[HealthCheck] | None = None) -> None:
        self.checks = checks or [LivenessCheck(), MemoryCheck(), PerformanceCheck()]

    def check(self, worker: ObservedWorker, settings: HealthSettings) -> CheckResult:
        worst = CheckResult(HEALTHY)
        details = []
        for strategy in self.checks:
            result = strategy.check(worker, settings)
            if result.detail and result.status != HEALTHY:
                details.append(f"{strategy.name}: {result.detail}")
            if (SEVERITY[result.status], -result.priority) > (SEVERITY[worst.status],
                                                              -worst.priority):
                worst = result
        return CheckResult(worst.status, worst.requires_action, worst.priority,
                           "; ".join(details))


def pool_status(ready_members: int, target: int, spares_ready: int, spares_wanted: int,
                worker_statuses: list[str], escalated: bool, breaker_open: bool,
                overloaded: bool) -> tuple[str, str]:
    """The aggregate rule in the module docstring; returns (status, reason)."""
    if ready_members == 0:
        return UNHEALTHY, "no worker is ready"
    if escalated:
        return UNHEALTHY, "recovery escalated: workers cannot be kept running"
    if breaker_open:
        return UNHEALTHY, "the circuit breaker is open"
    if ready_members < target:
        return DEGRADED, f"{ready_members} of {target} workers ready"
    if spares_ready < spares_wanted:
        return DEGRADED, f"{spares_ready} of {spares_wanted} warm spares ready"
    bad = [s for s in worker_statuses if s != HEALTHY]
    if bad:
        return DEGRADED, f"{len(bad)} worker(s) not healthy: {', '.join(sorted(set(bad)))}"
    if overloaded:
        return DEGRADED, "overloaded: calls are waiting for workers"
    return HEALTHY, "all workers ready and healthy"
