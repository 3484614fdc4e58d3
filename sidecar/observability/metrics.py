"""Prometheus metrics of the sidecar and its pools, in one registry of this process.

Owns: the metrics registry (``Metrics.registry``, never prometheus_client's global one and never
its multiprocess mode: worker figures are aggregated here, in the sidecar), the per-call
observations (counters and histograms kept as plain numbers by the loop thread), the per-minute
ring the dashboard draws, restarts by reason, and the counters other parts feed through
``record_alert`` and ``record_quarantined``. Must not touch: the pool, the chain, the workers
(it only reads their snapshots, in the loop thread), sockets (``sidecar.http.handler`` serves it).

Data flow::

    loop thread: MeteredCall's or LeanCall's sink -> observe_answer (two bisects, sums)
                 Pool.start_call -> observe_queue_wait; pool events -> on_pool_event
                 a 1 s timer -> loop lag
    HTTP thread: registry.collect() -> sidecar.observability.collector.SidecarCollector.collect
                 -> ask(loop, gather): the loop copies its numbers and gauges (bounded wait)
                 -> metric families; psutil for the sidecar's own RSS and fds

The loop never waits on a scrape: a scrape waits (with a deadline) for one loop turn.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import HistogramMetricFamily

from bridge import protocol
from sidecar.pool.call import Call
from sidecar.pool.events import WorkerExited

PREFIX = "py3sidecar_"
# 50 us to 60 s: the fastest calls are sub-millisecond, the longest default timeout is 60 s.
DURATION_BUCKETS = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20)
KNOWN_OUTCOMES = frozenset(("ok", protocol.USER, protocol.TIMEOUT, protocol.CRASHED,
                            protocol.OVERLOADED, protocol.CIRCUIT_OPEN, protocol.UNAVAILABLE,
                            protocol.BAD_REQUEST, protocol.UNAUTHORIZED, protocol.INTERNAL))
# Why a worker was replaced, from the reason texts of the pool, watchdog and recovery: a bounded
# label set (first match wins; anything else is "other").
RESTART_REASONS = (("crashed", ("died", "signal", "exit code")), ("timeout", ("timeout",)),
                   ("hang", ("cpu progress", "probe", "unresponsive", "hung", "ping")),
                   ("memory", ("memory", "rss")), ("max_calls", ("max-calls",)),
                   ("low_score", ("score",)), ("scale_down", ("scaling down",)),
                   ("protocol", ("protocol", "pipe", "channel", "ready message")),
                   ("start_timeout", ("get ready",)))
MINUTES_KEPT = 60
SCRAPE_WAIT = 2.0  # seconds a scrape waits for the loop before it reports it unresponsive


class LoopUnresponsive(RuntimeError):
    """The loop thread did not run a request within its deadline."""


def ask(loop: Any, fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in the loop thread and return its result; raise ``LoopUnresponsive`` after
    ``timeout`` seconds. From the loop thread itself, ``fn`` simply runs."""
    if loop.thread_id == threading.get_ident():
        return fn()
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the asking thread, which re-raises it
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise LoopUnresponsive(
            f"the sidecar's event loop did not answer within {timeout:g}s") from None
    except concurrent.futures.CancelledError:
        raise LoopUnresponsive("the sidecar's event loop stopped") from None


class LoopHistogram:
    """A histogram kept by one thread with no lock: a bisect and two additions per value."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> int:
        i = bisect.bisect_left(self.bounds, value)  # le semantics: value <= bound
        self.counts[i] += 1
        self.total += value
        return i

    def copy(self) -> tuple[list[int], float]:
        return list(self.counts), self.total

    def family(self, name: str, doc: str, labels: dict[str, str] | None = None,
               data: tuple[list[int], float] | None = None) -> HistogramMetricFamily:
        counts, total = data or self.copy()
        names = list(labels or {})
        family = HistogramMetricFamily(name, doc, labels=names)
        cumulative, buckets = 0, []
        for bound, count in zip([*map(_le, self.bounds), "+Inf"], counts):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([labels[n] for n in names], buckets, total)
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


def percentile(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """The q-quantile of a bucketed distribution, interpolated in its bucket (as
    Prometheus' histogram_quantile does); None without data."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(counts):
        if seen + count >= rank and count:
            low = bounds[i - 1] if i else 0.0
            high = bounds[i] if i < len(bounds) else bounds[-1]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return bounds[-1]


class MeteredCall(Call):
    """The caller's call as ``Service.dispatch`` accepts it: observed once, as it is answered."""

    __slots__ = ("op", "metrics", "reply", "pool", "audited")

    def __init__(self, metrics: Metrics, op: str, rid: Any, payload: bytes, timeout: float,
                 reply: Callable[[bytes], None], now: float, pool: str | None = None) -> None:
        super().__init__(rid, payload, timeout, self.observed, now)
        self.op = op
        self.metrics = metrics
        self.reply = reply
        self.pool = pool  # the named pool asked for (None: the primary)
        # a sidecar.observability.audit.AuditEntry when python3.audit is on
        self.audited: Any = False

    def observed(self, data: bytes) -> None:
        """This call's sink: observed once (``outcome`` already set), then sent on."""
        now = self.metrics.observe_answer(self.op, self.outcome, self.accepted_at, len(data),
                                          self.pool or "primary")
        if self.audited:  # a sidecar.observability.audit.AuditEntry
            self.audited.finish(self.outcome, now - self.accepted_at)
        self.reply(data)


class Metrics:
    """Everything the sidecar counts; numbers change in the loop thread only (except the two
    thread-safe counters other parts may feed from anywhere)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        self.calls: dict[tuple[str, str], int] = {}
        self.pool_calls: dict[tuple[str, str], int] = {}  # (pool asked for, outcome)
        self.refused: dict[str, int] = {}
        self.duration = LoopHistogram(DURATION_BUCKETS)
        self.queue_wait = LoopHistogram(DURATION_BUCKETS)
        self.output_size = LoopHistogram(SIZE_BUCKETS)
        self.restarts: dict[str, int] = {}
        self.loop_lag = 0.0
        self.loop_lag_max = 0.0
        # per minute: [minute number, wall time at its start, calls, errors, duration buckets]
        self.minutes: deque[list[Any]] = deque(maxlen=MINUTES_KEPT)
        self.gather: Callable[[], dict[str, Any]] = dict  # set by the service: loop snapshot
        self.started = clock()
        self.loop: Any = None
        self.alerts_sent = Counter(
            f"{PREFIX}alerts_sent", "Alert notifications sent, by channel and level",
            ["channel", "level"], registry=self.registry)
        self.quarantined = Counter(
            f"{PREFIX}quarantined_requests", "Requests refused by the quarantine",
            registry=self.registry)

    # ------------------------------------------------------------ feeding (loop thread)
    def observe_answer(self, op: str, outcome: str | None, accepted_at: float, size: int,
                       pool: str) -> float:
        """One per answered execute/call (both paths, sidecar/routing/lean.py), kept to a
        handful of operations: the op's and the pool's counts, the two histograms
        (``LoopHistogram.observe``, inline) and the minute ring. Returns the clock reading it
        took (the audit line's duration)."""
        now = self.clock()
        kind = outcome or "ok"
        calls, pool_calls = self.calls, self.pool_calls
        key = (op, kind)
        calls[key] = calls.get(key, 0) + 1
        key = (pool, kind)
        pool_calls[key] = pool_calls.get(key, 0) + 1
        seconds = now - accepted_at
        duration, sizes = self.duration, self.output_size
        i = bisect.bisect_left(duration.bounds, seconds)  # LoopHistogram.observe, inline
        duration.counts[i] += 1
        duration.total += seconds
        sizes.counts[bisect.bisect_left(sizes.bounds, size)] += 1
        sizes.total += size
        minutes = self.minutes
        number = now // 60
        if not minutes or minutes[-1][0] != number:
            minutes.append([number, time.time(), 0, 0, [0] * (len(DURATION_BUCKETS) + 1)])
        minute = minutes[-1]
        minute[2] += 1
        if outcome is not None:
            minute[3] += 1
        minute[4][i] += 1
        return now

    def observe_queue_wait(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)

    def count(self, op: str, outcome: str | None = None) -> None:
        """A request the sidecar answered itself (ping, health, diag, ...)."""
        key = (op, outcome or "ok")
        self.calls[key] = self.calls.get(key, 0) + 1

    def count_refused(self, kind: str) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1

    def on_pool_event(self, event: object) -> None:
        """A pool event (``sidecar.pool.events``): restarts counted by reason."""
        match event:
            case WorkerExited(expected=False):
                self.count_restart("crashed")
            case WorkerExited(reason=reason) if reason not in ("", "shutdown"):
                self.count_restart(classify_restart(reason))

    def count_restart(self, reason: str) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def start_lag_probe(self, loop: Any, interval: float = 1.0) -> None:
        """A timer that measures how late the loop runs it: the loop's lag."""
        self.loop = loop

        def fire(due: float) -> None:
            lag = max(0.0, loop.clock() - due)
            self.loop_lag = lag
            self.loop_lag_max = max(self.loop_lag_max, lag)
            due = loop.clock() + interval
            loop.call_at(due, lambda: fire(due))

        due = loop.clock() + interval
        loop.call_at(due, lambda: fire(due))

    # ------------------------------------------------------------ the API for other parts
    def record_alert(self, channel: str, level: str) -> None:
        """An alert notification went out (thread-safe; the alert manager calls it)."""
        self.alerts_sent.labels(channel, level).inc()

    def record_quarantined(self, count: int = 1) -> None:
        """Requests the quarantine refused (thread-safe)."""
        self.quarantined.inc(count)

    # ------------------------------------------------------------ reading (loop thread)
    def copy_numbers(self) -> dict[str, Any]:
        """The loop's numbers, copied so another thread can read them at leisure."""
        lag_max, self.loop_lag_max = self.loop_lag_max, self.loop_lag
        return {"calls": dict(self.calls), "pool_calls": dict(self.pool_calls),
                "refused": dict(self.refused),
                "duration": self.duration.copy(), "queue_wait": self.queue_wait.copy(),
                "output_size": self.output_size.copy(), "restarts": dict(self.restarts),
                "loop_lag": self.loop_lag, "loop_lag_max": lag_max}

    def minutes_view(self) -> list[dict[str, Any]]:
        """The last hour, one entry per minute that saw calls (the dashboard's charts)."""
        return [{"at": wall, "calls": calls, "errors": errors, "per_second": calls / 60.0,
                 "p50": percentile(DURATION_BUCKETS, buckets, 0.5),
                 "p99": percentile(DURATION_BUCKETS, buckets, 0.99)}
                for _, wall, calls, errors, buckets in self.minutes]


    def recent_summary(self, window_minutes: int = 2) -> dict[str, Any]:
        """Calls/s, error ratio, p50 and p99 over the running and the previous minute (the
        ``health`` op's ``monitoring`` block; the gateway's health-poll tags show it)."""
        now = self.clock()
        first = now // 60 - window_minutes + 1
        recent = [m for m in self.minutes if m[0] >= first]
        span = max(1.0, now - max(first * 60.0, self.started))
        calls = sum(m[2] for m in recent)
        errors = sum(m[3] for m in recent)
        buckets = [sum(column) for column in zip(*(m[4] for m in recent))] if recent else []
        return {"window_seconds": span, "calls_per_second": calls / span,
                "error_ratio": errors / calls if calls else 0.0,
                "p50_seconds": percentile(DURATION_BUCKETS, buckets, 0.5) if calls else None,
                "p99_seconds": percentile(DURATION_BUCKETS, buckets, 0.99) if calls else None}


def classify_restart(reason: str) -> str:
    text = reason.lower()
    for label, needles in RESTART_REASONS:
        if any(n in text for n in needles):
            return label
    return "other"
