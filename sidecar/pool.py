"""The worker pool: queue, dispatch, timeouts, crash detection, spares and bounded replacement.

Data flow (all in the sidecar's one loop thread, see ``sidecar.loop``)::

    submit(call) --idle member?--> start_call: frame -> worker's in-pipe
         |  no                                  |
         v                                      v  (worker runs user code)
    FIFO queue (bounded:             worker's out-pipe readable -> on_worker_output
    full -> overloaded)                 -> reply spliced with id + worker -> call.answer()
         ^                              -> worker idle again -> next queued call
         +-------------------------------------+
    deadline timer per call: queued -> ``timeout``; running -> stack dump, kill, ``timeout``
    pidfd readable (worker died): in-flight call ``crashed`` (exit code / signal), queued calls
        untouched, a warm spare promoted at once, a new spare spawned
    spawns bounded: back-off after failures, at most ``max_restarts`` per ``restart_window``

Owns: worker processes and their lifecycle (spawn, ready, probe, drain, kill, reap), members
and warm spares, the queue, per-call deadlines, exactly one answer per call, per-worker
observations (score, timings, RSS). Must not touch: framing (``sidecar.channel``), value
encoding (``bridge.codec``), client sockets (the fronts), config files (``sidecar.config``
builds ``PoolSettings``), or policy: *when* to probe, recycle or resize is decided by
``sidecar.watchdog``, ``sidecar.recovery`` and ``sidecar.scaling``, which call the verbs here.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bridge import protocol
from bridge.codec import pack_raw, splice_success, unpack_raw
from sidecar.call import Call
from sidecar.channel import FrameTooLarge
from sidecar.fd_output import FdOutput
from sidecar.isolation import outside_view
from sidecar.loop import Loop, Timer
from sidecar.process import WorkerProcess, WorkerSpec
from sidecar.score import HealthScore, ScoreConfig
from sidecar.spawn_policy import MEMBER, SPARE, SpawnLimits, SpawnPolicy, clamp_size, missing_roles

log = logging.getLogger("py3sidecar.pool")

_PROBE = "probe"
# Sent by a worker before a reply when the call left threads/children behind (sidecar.isolation).
_LEFT_BEHIND_PREFIX = b"\x82\xa2op" + pack_raw("left_behind")

STARTING, IDLE, BUSY, CHECKING, STOPPING = "starting", "idle", "busy", "checking", "stopping"


@dataclass
class PoolSettings:
    """Everything the pool needs, already validated (see ``sidecar.config``)."""

    name: str = "primary"
    initial_size: int = 2
    min_size: int = 1
    max_size: int = 4
    spares: int = 0
    queue_size: int = 64
    call_timeout: float = 30.0
    kill_grace: float = 0.5
    start_timeout: float = 30.0
    max_restarts: int = 30
    restart_window: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    python: list[str] = field(default_factory=lambda: [sys.executable])
    env: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)
    max_output_chars: int = 65536
    max_message_bytes: int = 64 << 20
    max_calls: int = 0             # recycle after this many calls (0: never) ...
    max_calls_jitter: int = 0      # ... plus up to this many more, so workers don't recycle at once
    max_memory: int = 0            # recycle after the current call above this RSS (0: never)
    cpu_limit: int = 0             # hard CPU seconds per call (RLIMIT_CPU, re-armed per call)
    address_space_limit: int = 0   # hard RLIMIT_AS per worker, bytes
    rss_sample_interval: float = 0.25  # at most one RSS reading per worker per interval
    stack_capture_wait: float = 0.1    # how long to wait for a hung worker's stack dump
    fd_output: str = "log"             # workers' fd 1/2: "log" (rate-limited) or "discard"
    output_log_rate: int = 65536       # bytes per second of fd 1/2 output into the log (all)
    stack_root: str = ""               # where this pool's stack folder goes ("": temp folder)
    user: str = ""                     # account workers run as ("": the sidecar's)
    group: str = ""                    # group workers run as ("": the user's own)
    score: ScoreConfig = field(default_factory=ScoreConfig)


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


class Pool:
    def __init__(self, loop: Loop, settings: PoolSettings) -> None:
        self.loop = loop
        self.settings = settings
        self.clock = loop.clock
        self.workers: dict[int, WorkerHandle] = {}
        self.idle: list[WorkerHandle] = []
        self.queue: deque[Call] = deque()
        self.target_size = settings.initial_size
        self.next_worker_id = 1
        self.closing = False
        # spawn accounting
        self.spawning = SpawnPolicy(SpawnLimits(
            settings.max_restarts, settings.restart_window, settings.backoff_initial,
            settings.backoff_max), self.clock)
        self.spawn_timer: Timer | None = None
        # counters and accumulators (read by health, scaling and metrics)
        self.counters: dict[str, int] = {"accepted": 0, "succeeded": 0, "spawned": 0,
                                         "spawn_failures": 0, "crashes": 0, "kills": 0,
                                         "recycled": 0, "probes": 0, "redispatched": 0}
        self.errors_by_kind: dict[str, int] = {}
        self.busy_seconds_total = 0.0
        self.queue_wait_total = 0.0
        self.queue_wait_count = 0
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.observe_queue_wait: Callable[[float], None] = lambda seconds: None  # metrics
        self.stack_dir = tempfile.mkdtemp(prefix=f"py3sidecar-{settings.name}-stacks-",
                                          dir=settings.stack_root or None)
        self.spec = WorkerSpec.from_settings(settings)
        self.fd_output = FdOutput(settings.fd_output, settings.output_log_rate, self.clock)

    @property
    def backoff_factor(self) -> float:
        """Raised by recovery on resource exhaustion (``SpawnPolicy.backoff_factor``)."""
        return self.spawning.backoff_factor

    @backoff_factor.setter
    def backoff_factor(self, factor: float) -> None:
        self.spawning.backoff_factor = factor

    # ------------------------------------------------------------ events
    def subscribe(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(event, info)``: worker_spawned/ready/exited, spawn_failed, ..."""
        self.listeners.append(listener)

    def publish(self, event: str, **info: Any) -> None:
        info.setdefault("pool", self.settings.name)
        for listener in self.listeners:
            try:
                listener(event, info)
            except Exception:
                log.exception("pool event listener failed on %s", event)

    # ------------------------------------------------------------ public API (loop thread)
    def start(self) -> None:
        self.ensure_capacity()

    def submit(self, call: Call) -> None:
        """Accept a call: run it now, queue it, or answer at once (overloaded/unavailable)."""
        self.counters["accepted"] += 1
        if self.closing:
            call.fail(protocol.UNAVAILABLE, "the sidecar is shutting down; retry against its "
                      "replacement")
            return
        if self.idle:
            call.timer = self.loop.call_at(call.deadline, lambda: self.expire(call))
            self.start_call(self.idle.pop(), call)
            return
        reason = self.unavailable_reason()
        if reason:
            self.count_error(protocol.UNAVAILABLE)
            call.fail(protocol.UNAVAILABLE, reason)
        elif len(self.queue) >= self.settings.queue_size:
            self.count_error(protocol.OVERLOADED)
            call.fail(protocol.OVERLOADED,
                      f"all {self.live_count()} workers are busy and the queue is full "
                      f"({self.settings.queue_size} calls waiting, python3.pool.queue-size); "
                      "retry later or raise python3.pool.max-size")
        else:
            call.timer = self.loop.call_at(call.deadline, lambda: self.expire(call))
            self.queue.append(call)

    def members(self) -> list[WorkerHandle]:
        """Serving workers (not spares), excluding those on their way out."""
        return [w for w in self.workers.values()
                if w.role == MEMBER and w.state != STOPPING and w.replaced_by is None]

    def spares(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.role == SPARE and w.state != STOPPING]

    def live_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.role == MEMBER and w.state != STOPPING)

    def ready_members(self) -> int:
        return sum(1 for w in self.workers.values()
                   if w.role == MEMBER and w.state in (IDLE, BUSY, CHECKING))

    def busy(self) -> bool:
        return bool(self.queue) or any(w.state == BUSY for w in self.workers.values())

    def unavailable_reason(self) -> str:
        """Non-empty when no worker exists nor is about to: callers must not wait in vain."""
        if self.live_count() or self.spares():
            return ""
        return self.spawning.why_none_can_start()

    # ------------------------------------------------------------ dispatch
    def start_call(self, worker: WorkerHandle, call: Call) -> None:
        worker.state = BUSY
        worker.call = call
        call.worker = worker
        call.started_at = now = self.clock()
        if now - call.accepted_at > 0.0:
            self.queue_wait_total += now - call.accepted_at
        self.queue_wait_count += 1
        self.observe_queue_wait(now - call.accepted_at)
        try:
            worker.process.write(call.payload)
        except OSError as exc:
            # The worker died before it read the request: the call never started, so it goes
            # back to the front of the queue for another worker.
            worker.call = None
            call.worker = None
            self.queue.appendleft(call)
            self.kill(worker, f"its pipe failed ({exc})")

    def on_worker_output(self, worker: WorkerHandle) -> list[bytes] | None:
        """Handle what the worker wrote; None when nothing was there to read."""
        try:
            frames = worker.reader.feed()
        except FrameTooLarge as exc:
            self.kill(worker, f"it broke the protocol: {exc}")
            return None
        for frame in frames or ():
            state = worker.state
            if frame.startswith(_LEFT_BEHIND_PREFIX) and state != STARTING:
                self.taint(worker, unpack_raw(frame))
            elif state == BUSY:
                self.finish_call(worker, frame)
            elif state == CHECKING:
                self.finish_probe(worker, unpack_raw(frame))
            elif state == STARTING:
                self.on_ready(worker, frame)
            # frames from a stopping worker are stale: its call was already answered
        if worker.reader.eof:
            self.loop.remove_reader(worker.reader.fd)
            if worker.exit is None and worker.state != STOPPING:
                # Usually the process is exiting and its pidfd fires within microseconds. If it
                # lives on (user code closed our descriptors) it can no longer be used: end it.
                worker.kill_timer = self.loop.call_later(
                    0.2, lambda: self.kill(worker, "it closed its channel", grace=0.2))
        return frames

    def finish_call(self, worker: WorkerHandle, frame: bytes) -> None:
        self.look_from_outside(worker)
        call = worker.call
        worker.call = None
        worker.calls += 1
        worker.last_used = now = self.clock()
        if call is not None:
            seconds = now - call.started_at
            worker.busy_seconds += seconds
            self.busy_seconds_total += seconds
            self.answer_from_worker(worker, call, frame, seconds)
        if worker.state == STOPPING:
            return
        worker.state = IDLE
        if now - worker.rss_at >= self.settings.rss_sample_interval:
            self.check_memory_after_call(worker, now)
        if worker.max_calls and worker.calls >= worker.max_calls:
            worker.recycle_after_call = worker.recycle_after_call or (
                f"it served {worker.calls} calls (python3.resources.max-calls-per-worker)")
        if worker.drain_after_call:
            self.drain(worker)
        elif worker.recycle_after_call:
            self.recycle(worker, worker.recycle_after_call)
        else:
            self.worker_available(worker)

    def answer_from_worker(self, worker: WorkerHandle, call: Call, frame: bytes,
                           seconds: float) -> None:
        """Forward the worker's reply: a success spliced undecoded (``bridge.codec``); any
        other frame decoded, and a decoded success still counted as one."""
        spliced = splice_success(frame, call.rid, worker.id)
        if spliced is not None:
            data, wall, cpu = spliced
            self.record_success(worker, seconds, wall, cpu)
            call.answer(data)
            return
        reply = unpack_raw(frame)
        reply["id"] = call.rid
        reply["worker"] = worker.id
        if reply.get("ok") is True:
            self.record_success(worker, seconds, reply.get("ms"), reply.get("cpu"))
            call.answer(pack_raw(reply))
            return
        error = reply.get("error") or {}
        kind = error.get("kind", protocol.INTERNAL)
        worker.score.record(kind, seconds)
        self.count_error(kind)
        if error.get("type") == "MemoryError":
            worker.recycle_after_call = "its call ran out of memory (MemoryError)"
        call.answer(pack_raw(reply), kind)

    def record_success(self, worker: WorkerHandle, seconds: float, wall: Any, cpu: Any) -> None:
        if isinstance(wall, float) and isinstance(cpu, float):
            worker.wall_ms.append(wall)
            worker.cpu_ms.append(cpu)
        worker.score.record_success(seconds)
        self.counters["succeeded"] += 1

    def look_from_outside(self, worker: WorkerHandle) -> None:
        """The kernel's count, which no thread in the worker can forge: more threads than it
        started with, or any child, means the call's code may still run (sidecar.isolation)."""
        if worker.tainted or not worker.threads_at_ready:
            return
        threads, children = outside_view(worker.pid)
        extra = threads - worker.threads_at_ready
        if extra > 0 or children > 0:
            self.taint(worker, {"reasons": [
                f"the kernel counts {max(extra, 0)} more thread(s) than it started with and "
                f"{max(children, 0)} child process(es)"]})

    def taint(self, worker: WorkerHandle, report: dict[str, Any]) -> None:
        """The worker's call left code running in it (threads, children): that code could
        print into, or answer for, a later call. It takes no other call and is recycled
        gracefully once this call is answered."""
        reasons = report.get("reasons")
        text = "; ".join(r for r in reasons if isinstance(r, str)) if isinstance(
            reasons, list) else ""
        first = not worker.tainted
        worker.tainted = f"its last call left something behind: {text or 'unspecified'}"
        if not first:  # already on its way out: keep the more detailed reason only
            return
        self.counters["left_behind"] = self.counters.get("left_behind", 0) + 1
        log.warning("%s %s", worker.describe(), worker.tainted)
        if worker.state == BUSY:
            worker.recycle_after_call = worker.tainted  # finish_call recycles it
            return
        if worker in self.idle:  # told late: a forged reply came first
            self.idle.remove(worker)
        if worker.state in (IDLE, CHECKING):
            self.recycle(worker, worker.tainted)

    def check_memory_after_call(self, worker: WorkerHandle, now: float) -> None:
        rss = worker.sample_rss(now)
        if not worker.rss_baseline and worker.calls:
            worker.rss_baseline = rss
        if self.settings.max_memory and rss > self.settings.max_memory:
            worker.recycle_after_call = (f"its memory ({rss >> 20} MiB) is above "
                                       f"python3.resources.max-memory-per-worker "
                                       f"({self.settings.max_memory >> 20} MiB)")
            self.publish("memory_high", worker=worker.id, pid=worker.pid, rss=rss)

    def worker_available(self, worker: WorkerHandle) -> None:
        if worker.exit is not None or worker.state != IDLE or worker.tainted:
            return
        if worker.role == SPARE:
            if self.live_count() < self.target_size and not self.closing:
                self.promote(worker)
            else:
                return  # a ready spare waits, warm, outside the idle list
        if self.queue:
            self.start_call(worker, self.queue.popleft())
        else:
            self.idle.append(worker)

    def expire(self, call: Call) -> None:
        if call.done:
            return
        worker = call.worker
        if worker is None:
            try:
                self.queue.remove(call)
            except ValueError:
                pass
            self.count_error(protocol.TIMEOUT)
            call.fail(protocol.TIMEOUT,
                      f"the call waited {call.timeout:g}s in the queue and no worker became "
                      f"free; the pool has {self.live_count()} workers, all busy")
            return
        self.count_error(protocol.TIMEOUT)
        worker.score.record_failure(protocol.TIMEOUT)
        reason = f"its call passed the {call.timeout:g}s timeout"
        self.take_out_of_service(worker, reason)

        def answer(stack: str) -> None:
            call.fail(protocol.TIMEOUT,
                      f"the call ran longer than its timeout of {call.timeout:g}s; "
                      f"{worker.describe()} was stopped and is being replaced",
                      worker=worker.id, traceback=stack or None)
            self.publish("call_timed_out", worker=worker.id, pid=worker.pid, stack=stack)
            self.kill(worker, reason)

        self.capture_stack(worker, answer)

    def count_error(self, kind: str) -> None:
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    # ------------------------------------------------------------ probes (watchdog's tools)
    def probe(self, worker: WorkerHandle, op: str, deadline: float,
              done: Callable[[dict[str, Any] | None], None], **extra: Any) -> bool:
        """Send an idle worker ``ping``/``bench``/...; ``done(reply)`` or ``done(None)`` at the
        deadline. Only idle workers are probed, so a probe never delays a user call by more
        than its own sub-millisecond run."""
        if worker.state != IDLE or worker.exit is not None:
            return False
        if worker in self.idle:
            self.idle.remove(worker)
        worker.state = CHECKING
        worker.probe_done = done
        worker.probe_timer = self.loop.call_later(deadline, lambda: self.probe_expired(worker))
        self.counters["probes"] += 1
        try:
            worker.process.write(pack_raw({"op": op, **extra}))
        except OSError:
            self.probe_expired(worker)
            return False
        return True

    def finish_probe(self, worker: WorkerHandle, reply: dict[str, Any] | None) -> None:
        done, worker.probe_done = worker.probe_done, None
        if worker.probe_timer is not None:
            worker.probe_timer.cancel()
        if worker.state == CHECKING:
            worker.state = IDLE
        if done is not None:
            done(reply)
        if worker.state == IDLE:
            self.worker_available(worker)

    def probe_expired(self, worker: WorkerHandle) -> None:
        if worker.state != CHECKING:
            return
        done, worker.probe_done = worker.probe_done, None
        # Out of service at once: it did not answer, so it must not get a user call.
        self.take_out_of_service(worker, "it did not answer a health probe in time")
        if done is not None:
            done(None)

    # ------------------------------------------------------------ stack capture
    def capture_stack(self, worker: WorkerHandle, then: Callable[[str], None],
                      log_stack: bool = True) -> None:
        """Ask the worker for every thread's stack, then ``then(text)`` (``WorkerProcess``)."""
        worker.process.capture_stack(self.settings.stack_capture_wait, then, log_stack)

    # ------------------------------------------------------------ worker lifecycle
    def spawn_worker(self, role: str = MEMBER) -> WorkerHandle | None:
        settings = self.settings
        wid = self.next_worker_id
        self.next_worker_id += 1
        stack_file = os.path.join(self.stack_dir, f"worker-{wid}.stack")
        try:
            process = WorkerProcess(self.loop, self.spec, stack_file=stack_file,
                                    fd_output=self.fd_output, label=f"worker {wid}")
        except OSError as exc:
            self.spawn_failed(f"{type(exc).__name__}: {exc} (command: {settings.python[0]})",
                              exc.errno)
            return None
        worker = WorkerHandle(wid, role, process, settings, self.clock(), self.clock)
        process.label = worker.describe()
        process.on_write_error = lambda exc: self.kill(worker, f"its pipe failed ({exc})")
        self.workers[wid] = worker
        process.watch(lambda: self.on_worker_output(worker), lambda: self.on_worker_exit(worker))
        worker.start_timer = self.loop.call_later(settings.start_timeout,
                                                  lambda: self.start_timed_out(worker))
        self.counters["spawned"] += 1
        self.publish("worker_spawned", worker=wid, pid=process.pid, role=role)
        return worker

    def on_ready(self, worker: WorkerHandle, frame: bytes) -> None:
        message = unpack_raw(frame)
        if message.get("op") != "ready":
            self.kill(worker, f"it sent {message!r} instead of its ready message")
            return
        if worker.start_timer:
            worker.start_timer.cancel()
        worker.ready_at = now = self.clock()
        worker.preload_errors = list(message.get("preload_errors") or ())
        for problem in worker.preload_errors:
            log.error("%s could not preload %s (python3.worker.preload)",
                      worker.describe(), problem)
        self.spawning.worker_ready()
        worker.state = IDLE
        worker.sample_rss(now)
        worker.threads_at_ready = max(0, outside_view(worker.pid)[0])
        log.debug("%s ready in %.1f ms", worker.describe(), (now - worker.spawned_at) * 1000)
        self.publish("worker_ready", worker=worker.id, pid=worker.pid, role=worker.role,
                     seconds=now - worker.spawned_at)
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            self.drain(old)
        if worker.recycle_when_ready:  # started on code that has changed since
            reason, worker.recycle_when_ready = worker.recycle_when_ready, ""
            self.recycle(worker, reason)  # serves, if nothing else can, until replaced
            return
        self.worker_available(worker)

    def start_timed_out(self, worker: WorkerHandle) -> None:
        if worker.state == STARTING:
            self.kill(worker, f"it did not get ready within {self.settings.start_timeout:g}s "
                      "(python3.worker.start-timeout)")

    def promote(self, spare: WorkerHandle) -> None:
        """A warm spare becomes a serving member (it takes a dead member's place at once)."""
        spare.role = MEMBER
        log.info("%s promoted from warm spare", spare.describe())
        self.publish("spare_promoted", worker=spare.id, pid=spare.pid)

    def take_out_of_service(self, worker: WorkerHandle, reason: str) -> None:
        """No new calls for this worker; its place is filled at once (spare or spawn)."""
        if worker.state == STOPPING:
            return
        was_starting = worker.state == STARTING
        worker.state = STOPPING
        worker.stop_reason = reason
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.probe_timer is not None:
            worker.probe_timer.cancel()
        log.warning("%s is being replaced: %s", worker.describe(), reason)
        if was_starting:
            self.spawn_failed(f"{worker.describe()} failed to start: {reason}", None)
        self.ensure_capacity()

    def kill(self, worker: WorkerHandle, reason: str, grace: float | None = None) -> None:
        """End a worker now: SIGTERM to its process group, SIGKILL after the grace."""
        self.take_out_of_service(worker, reason)
        if worker.exit is not None or worker.killing:
            return
        worker.killing = True
        self.counters["kills"] += 1
        worker.process.signal(signal.SIGTERM)
        worker.kill_timer = self.loop.call_later(
            self.settings.kill_grace if grace is None else grace,
            lambda: worker.process.signal(signal.SIGKILL))

    def drain(self, worker: WorkerHandle, reason: str = "") -> None:
        """Stop a worker gracefully: now if idle, after its current call if busy."""
        reason = reason or worker.drain_after_call or worker.stop_reason or "replaced"
        if worker.state == BUSY:
            worker.drain_after_call = reason
            return
        if worker.state == STOPPING:
            return
        self.take_out_of_service(worker, reason)
        worker.process.close_input()
        worker.kill_timer = self.loop.call_later(max(2.0, self.settings.kill_grace),
                                                 lambda: self.kill(worker, "it did not exit"))

    def recycle(self, worker: WorkerHandle, reason: str) -> None:
        """Graceful replacement: a warm spare (or a new worker, once ready) takes over, then
        this one drains. The pool never drops below its size while it happens."""
        worker.recycle_after_call = ""
        if worker.replaced_by is not None or worker.state == STOPPING:
            return
        self.counters["recycled"] += 1
        worker.stop_reason = reason
        log.info("%s will be recycled: %s", worker.describe(), reason)
        self.publish("worker_recycled", worker=worker.id, pid=worker.pid, reason=reason)
        ready_spares = [w for w in self.spares() if w.state == IDLE and w is not worker]
        if ready_spares or worker.role == SPARE:
            if worker.role == MEMBER:
                self.promote(ready_spares[0])
            worker.replaced_by = ready_spares[0].id if ready_spares else -1
            self.drain(worker)
            if ready_spares:
                self.worker_available(ready_spares[0])
            self.ensure_capacity()
            return
        new = self.spawn_worker(MEMBER)
        if new is None and worker.tainted:  # it must not serve on: out now, refilled later
            self.drain(worker)
            return
        if new is not None:
            new.replaces = worker
            worker.replaced_by = new.id
        # It serves until its replacement is ready (or on, if none can start now). An idle
        # worker may already be in the idle list (recycled by recovery or a reload, not after
        # a call): listed twice, it would be handed calls after it was drained.
        if worker.state == IDLE and worker not in self.idle:
            self.worker_available(worker)

    def renew_workers(self, reason: str) -> int:
        """Replace every worker gracefully (e.g. the user's code changed on disk). Spares go
        first, so no member is handed an old spare; a worker still starting is replaced once
        ready. Returns how many workers will be renewed."""
        stale = sorted((w for w in self.workers.values()
                        if w.state != STOPPING and w.replaced_by is None),
                       key=lambda w: w.role != SPARE)
        for worker in stale:
            if worker.state == STARTING:
                worker.recycle_when_ready = reason
            else:
                self.recycle(worker, reason)
        return len(stale)

    def on_worker_exit(self, worker: WorkerHandle) -> None:
        end = worker.process.poll_exit()
        if end is None:
            return  # spurious wake-up: pidfd readable only once the process has exited
        # Read what the worker managed to send before it died (a reply racing its exit). The
        # read is non-blocking: a child the user's code forked may still hold the pipe open.
        for _ in range(256):
            if worker.reader.eof or self.on_worker_output(worker) is None:
                break
        for timer in (worker.kill_timer, worker.start_timer, worker.probe_timer):
            if timer is not None:
                timer.cancel()
        call = worker.call
        if call is not None and not call.done and worker.process.never_read(
                len(call.payload) + 4):
            # It died before reading this request: the call never started. Run it elsewhere.
            worker.call = None
            call.worker = None
            self.counters["redispatched"] += 1
            self.queue.appendleft(call)
        worker.process.reap()  # descriptors, its last fd 1/2 words, stack file, its group
        self.workers.pop(worker.id, None)
        if worker in self.idle:
            self.idle.remove(worker)
        call = worker.call
        worker.call = None
        expected = worker.state == STOPPING
        was_starting = worker.state == STARTING
        if worker.probe_done is not None:
            done, worker.probe_done = worker.probe_done, None
            done(None)
        self.answer_after_exit(worker, call, end, expected)
        worker.state = STOPPING
        text = end["text"]
        log.log(logging.INFO if expected else logging.ERROR, "%s exited with %s%s",
                worker.describe(), text, f" ({worker.stop_reason})" if worker.stop_reason else "")
        details = {k: v for k, v in end.items() if k not in ("returncode", "text")}
        self.publish("worker_exited", worker=worker.id, pid=worker.pid, expected=expected,
                     returncode=end["returncode"], text=text,
                     reason=worker.stop_reason or text, during_call=call is not None,
                     rss=worker.rss, starting=was_starting, **details)
        if worker.replaces is not None:  # a replacement died before it took over
            worker.replaces.replaced_by = None
            if worker.replaces.tainted:  # it waits for no replacement: out, refilled below
                self.drain(worker.replaces)
            worker.replaces = None
        if was_starting:
            self.spawn_failed(f"{worker.describe()} exited with {text} before it was ready", None)
        if not self.closing:
            if not expected and not was_starting:
                self.record_restart()
            self.ensure_capacity()

    def answer_after_exit(self, worker: WorkerHandle, call: Call | None, end: dict[str, Any],
                          expected: bool) -> None:
        """The dead worker's unanswered call: ``timeout`` if past its deadline, else
        ``crashed`` (its effects are unknown); an unexpected exit counts as a crash."""
        if call is not None and not call.done and self.clock() >= call.deadline:
            self.count_error(protocol.TIMEOUT)  # it died while its stack was being captured
            call.fail(protocol.TIMEOUT, f"the call ran longer than its timeout of "
                      f"{call.timeout:g}s; {worker.describe()} was stopped", worker=worker.id)
        elif call is not None and not call.done:
            self.counters["crashes"] += 1
            self.count_error(protocol.CRASHED)
            worker.score.record_failure(protocol.CRASHED)
            details = {k: v for k, v in end.items() if k not in ("returncode", "text")}
            call.fail(protocol.CRASHED,
                      f"the Python worker running this call died with {end['text']}; the "
                      "call's effects are unknown; a replacement worker has been started",
                      worker=worker.id, pid=worker.pid, **details)
        elif not expected:
            self.counters["crashes"] += 1

    # ------------------------------------------------------------ bounded replacement
    def spawn_failed(self, message: str, err: int | None) -> None:
        self.counters["spawn_failures"] += 1
        delay = self.spawning.spawn_failed(message)
        failures = self.spawning.failures
        resource = err in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)
        log.error("could not start a Python worker (%d in a row, next try in %.2fs): %s",
                  failures, delay, message)
        self.publish("spawn_failed", message=message, errno=err, resource_exhaustion=resource,
                     failures=failures, retry_in=delay)
        if self.live_count() == 0:
            self.flush_queue_unavailable()

    def record_restart(self) -> None:
        if not self.spawning.restarted():
            return
        restarts, window = len(self.spawning.restarts), self.settings.restart_window
        log.critical("restart limit reached: %d worker restarts within %gs "
                     "(python3.pool.max-restarts); next start at +%.1fs",
                     restarts, window, self.spawning.wait())
        self.publish("restart_limit", restarts=restarts, window=window)

    def ensure_capacity(self) -> None:
        """Fill missing members (promoting warm spares first) and missing spares."""
        if self.closing:
            return
        spares = self.spares()
        while self.live_count() < self.target_size and spares:
            spare = next((w for w in spares if w.state == IDLE), spares[0])
            spares.remove(spare)
            self.promote(spare)
            self.worker_available(spare)
        missing = missing_roles(self.target_size, self.live_count(), self.settings.spares,
                                len(spares))
        if not missing:
            return
        if self.spawning.wait() > 0:
            if self.spawn_timer is None:
                self.spawn_timer = self.loop.call_at(self.spawning.next_at,
                                                     self._spawn_timer_fired)
            if self.live_count() == 0:
                self.flush_queue_unavailable()
            return
        for role in missing:
            if self.spawn_worker(role) is None:
                self.ensure_capacity()  # arms the back-off timer
                break

    def _spawn_timer_fired(self) -> None:
        self.spawn_timer = None
        self.ensure_capacity()

    def resize(self, size: int) -> None:
        """Set the member count (clamped to min/max); shrinking drains the least healthy."""
        size = clamp_size(size, self.settings.min_size, self.settings.max_size)
        old, self.target_size = self.target_size, size
        if size > old:
            self.ensure_capacity()
            return
        surplus = len(self.members()) - size
        victims = sorted(self.members(), key=lambda w: (w.state == BUSY, w.score.score, -w.rss))
        for worker in victims[:max(0, surplus)]:
            self.drain(worker, "the pool is scaling down")

    def flush_queue_unavailable(self) -> None:
        reason = self.unavailable_reason()
        if not reason:
            return
        while self.queue:
            call = self.queue.popleft()
            self.count_error(protocol.UNAVAILABLE)
            call.fail(protocol.UNAVAILABLE, reason)

    # ------------------------------------------------------------ shutdown
    def begin_shutdown(self) -> None:
        self.closing = True
        if self.spawn_timer:
            self.spawn_timer.cancel()

    def terminate(self, grace: float = 2.0) -> None:
        """Answer whatever is left, stop every worker, and wait (bounded) for them to exit."""
        self.closing = True
        while self.queue:
            self.queue.popleft().fail(protocol.UNAVAILABLE, "the sidecar shut down before this "
                                      "call could start")
        for worker in list(self.workers.values()):
            if worker.call is not None:
                worker.call.fail(protocol.UNAVAILABLE, "the sidecar shut down while this call "
                                 "was running", worker=worker.id)
            worker.process.close_input()
            if worker.state in (BUSY, STOPPING, CHECKING):
                worker.process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in list(self.workers.values()):
            worker.process.wait(deadline)
            # Idle workers exit on EOF by themselves, but what their calls spawned lives on in
            # their process group: nothing the pool started may outlive the sidecar's stop.
            worker.process.reap()
        self.workers.clear()
        self.idle.clear()
        for leftover in Path(self.stack_dir).glob("*"):
            leftover.unlink(missing_ok=True)
        try:
            os.rmdir(self.stack_dir)
        except OSError:
            pass

    # ------------------------------------------------------------ visibility
    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        states = [w.state for w in self.workers.values()]
        return {
            "name": self.settings.name,
            "size": {"target": self.target_size, "min": self.settings.min_size,
                     "max": self.settings.max_size, "live": self.live_count(),
                     "ready": self.ready_members(), "spares_wanted": self.settings.spares,
                     "spares_ready": sum(1 for w in self.spares() if w.state == IDLE)},
            "workers_by_state": {s: states.count(s)
                                 for s in (STARTING, IDLE, BUSY, CHECKING, STOPPING)},
            "queue": {"length": len(self.queue), "capacity": self.settings.queue_size},
            "counters": dict(self.counters),
            "fd_output": self.fd_output.snapshot(),
            "errors": dict(self.errors_by_kind),
            "spawn": self.spawning.snapshot(),
            "workers": [self.describe_worker(w, now) for w in self.workers.values()],
        }

    def describe_worker(self, w: WorkerHandle, now: float) -> dict[str, Any]:
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
