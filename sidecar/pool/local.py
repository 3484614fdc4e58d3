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

Rooms: ``sidecar.pool.lifecycle`` (spawn, ready, drain, kill, recycle, a worker's end; ``Pool``
inherits its verbs), ``sidecar.process.spawn`` (the process and its descriptors),
``sidecar.pool.spawn_policy`` (back-off, restart limit, missing roles),
``sidecar.pool.worker_handle`` (states, per-worker observations), ``sidecar.pool.call`` (answered
once), ``bridge.codec`` (the reply splice); its own snapshot (``Pool.snapshot``).

Owns: admission (overloaded/unavailable), the bounded queue, dispatch to idle members,
per-call deadlines, a worker's reply turned into the call's answer, probes, membership (who
serves, who is a spare). Must not touch: descriptors and signals (``sidecar.process.spawn``),
framing (``sidecar.channel``), value encoding and the reply's byte layout (``bridge.codec``), client
sockets (the fronts), config files (``sidecar.config.model`` builds ``PoolSettings``), or policy:
*when* to probe, recycle or resize is decided by ``sidecar.supervision.watchdog``,
``sidecar.supervision.recovery`` and
``sidecar.supervision.scaling``, which call the verbs here.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from collections.abc import Callable
from typing import Any

from bridge import protocol
from bridge.codec import pack_raw, splice_success, unpack_raw
from sidecar.channel import FrameTooLarge
from sidecar.loop import Loop, Timer
from sidecar.platform.procfs import outside_view
from sidecar.pool.call import Call
from sidecar.pool.events import CallTimedOut, MemoryHigh, PoolEvent
from sidecar.pool.lifecycle import WorkerLifecycle
from sidecar.pool.settings import PoolSettings
from sidecar.pool.spawn_policy import SpawnLimits, SpawnPolicy
from sidecar.pool.worker_handle import (
    BUSY,
    CHECKING,
    IDLE,
    MEMBER,
    SPARE,
    STARTING,
    STATES,
    STOPPING,
    WorkerHandle,
)
from sidecar.process.fd_output import FdOutput
from sidecar.process.spawn import WorkerProcess, WorkerSpec
from sidecar.worker.protocol import LEFT_BEHIND_PREFIX

log = logging.getLogger("py3sidecar.pool")

# Imported from here by other modules (watchdog, diagnostics, service, fallback, tests).
__all__ = ["Pool", "PoolSettings", "Call", "WorkerHandle", "STARTING", "IDLE", "BUSY",
           "CHECKING", "STOPPING", "MEMBER", "SPARE"]


class Pool(WorkerLifecycle):
    """Admission, queue, dispatch, deadlines, probes and membership of one worker pool; the
    lifecycle verbs (spawn, drain, recycle, ...) come from ``sidecar.pool.lifecycle``."""

    def __init__(self, loop: Loop, settings: PoolSettings,
                 process_factory: Callable[..., WorkerProcess] = WorkerProcess) -> None:
        self.loop = loop
        self.process_factory = process_factory  # the unit tests pass a fake process
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
        self.listeners: list[Callable[[PoolEvent], None]] = []
        self.observe_queue_wait: Callable[[float], None] = lambda seconds: None  # metrics
        self.stack_dir = tempfile.mkdtemp(prefix=f"py3sidecar-{settings.name}-stacks-",
                                          dir=settings.stack_root or None)
        self.spec = WorkerSpec.from_settings(settings)
        self.fd_output = FdOutput(settings.fd_output, settings.output_log_rate, self.clock)

    # ------------------------------------------------------------ events
    def listen(self, listener: Callable[[PoolEvent], None]) -> None:
        """``listener(event)`` with each ``sidecar.pool.events`` event; policies wrap a dict of
        type -> handler in ``sidecar.pool.events.route``."""
        self.listeners.append(listener)

    def publish(self, event: PoolEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("pool event listener failed on %s", type(event).__name__)

    # ------------------------------------------------------------ public API (loop thread)
    def start(self) -> None:
        self.start_template()
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
            self.queue.appendleft(call)
            self.kill(worker, f"its pipe failed ({exc})")
            if self.idle:  # another worker is free now: the call must not wait for a spawn
                self.start_call(self.idle.pop(), self.queue.popleft())

    def on_worker_output(self, worker: WorkerHandle) -> list[bytes] | None:
        """Handle what the worker wrote; None when nothing was there to read."""
        try:
            frames = worker.reader.feed()
        except FrameTooLarge as exc:
            self.kill(worker, f"it broke the protocol: {exc}")
            return None
        for frame in frames or ():
            state = worker.state
            if frame.startswith(LEFT_BEHIND_PREFIX) and state != STARTING:
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
        started with, or any child, means the call's code may still run
        (sidecar.worker.isolation)."""
        if worker.tainted or not worker.threads_at_ready:
            return
        threads, children = (worker.outside.read() if worker.outside is not None
                             else outside_view(worker.pid))
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
            self.publish(MemoryHigh(self.settings.name, worker.id, worker.pid, rss))

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
        # the worker running it, if any (a worker owns its call; timeouts are rare)
        worker = next((w for w in self.workers.values() if w.call is call), None)
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
            self.publish(CallTimedOut(self.settings.name, worker.id, worker.pid, stack))
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

    # ------------------------------------------------------------ visibility
    def snapshot(self) -> dict[str, Any]:
        """What the ``health`` op, the metrics and the dashboard read of this pool."""
        now = self.clock()
        states = [w.state for w in self.workers.values()]
        settings = self.settings
        return {
            "name": settings.name,
            "size": {"target": self.target_size, "min": settings.min_size,
                     "max": settings.max_size, "live": self.live_count(),
                     "ready": self.ready_members(), "spares_wanted": settings.spares,
                     "spares_ready": sum(1 for w in self.spares() if w.state == IDLE)},
            "workers_by_state": {s: states.count(s) for s in STATES},
            "queue": {"length": len(self.queue), "capacity": settings.queue_size},
            "counters": dict(self.counters),
            "fd_output": self.fd_output.snapshot(),
            "errors": dict(self.errors_by_kind),
            "spawn": self.spawning.snapshot(),
            "template": (self.spec.template.snapshot() if self.spec.template is not None
                         else {"state": "off"}),
            "workers": [w.report(now) for w in self.workers.values()],
        }
