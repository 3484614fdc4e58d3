"""The worker pool: queue, dispatch, timeouts, crash detection, spares and bounded replacement.

Data flow (all in the sidecar's one loop thread, see ``sidecar.loop``)::

    submit(call) --idle member?--> start_call: frame -> worker's in-pipe
         |  no                                  |
         v                                      v  (worker runs user code)
    FIFO queue (bounded:             worker's out-pipe readable -> WorkerSet.on_output
    full -> overloaded)                 -> finish_call: reply spliced with id + worker -> answer
         ^                              -> worker idle again -> next queued call
         +-------------------------------------+
    deadline timer per call: queued -> ``timeout``; running -> stack dump, kill, ``timeout``
    pidfd readable (worker died): in-flight call ``crashed`` (exit code / signal), queued calls
        untouched, a warm spare promoted at once, a new spare spawned
    spawns bounded: back-off after failures, at most ``max_restarts`` per ``restart_window``

Parts: its ``WorkerSet`` (``sidecar.pool.lifecycle``: membership, spawn, ready, drain, kill,
recycle, a worker's end; it tells the pool only through ``PoolSide``), ``sidecar.process.spawn``
(the process and its descriptors), ``sidecar.pool.spawn_policy`` (back-off, restart limit),
``sidecar.pool.worker_handle`` (states, observations), ``sidecar.pool.call`` (answered once),
``bridge.codec`` (the reply splice); its own snapshot (``Pool.snapshot``).

Owns: admission (overloaded/unavailable), the bounded queue, the idle list, dispatch, per-call
deadlines, a worker's reply turned into the call's answer (and a dead worker's unanswered call),
probes, events. Must not touch: membership and lifecycle (``sidecar.pool.lifecycle``),
descriptors and signals (``sidecar.process.spawn``), framing (``sidecar.channel``), value
encoding and the reply's byte layout (``bridge.codec``), client sockets (the fronts), config
files (``sidecar.config.model`` builds ``PoolSettings``), or policy: *when* to probe, recycle or
resize is decided by ``sidecar.supervision.watchdog``, ``sidecar.supervision.recovery`` and
``sidecar.supervision.scaling``, which call the verbs here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from bridge import protocol
from bridge.codec import pack_raw, splice_success, unpack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.pool.events import CallTimedOut, MemoryHigh, PoolEvent
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.lifecycle import WorkerSet
from sidecar.pool.settings import PoolSettings
from sidecar.pool.spawn_policy import SpawnPolicy
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
from sidecar.process.spawn import WorkerProcess

log = logging.getLogger("py3sidecar.pool")

# Imported from here by other modules (watchdog, diagnostics, service, fallback, tests).
__all__ = ["Pool", "PoolSettings", "Call", "WorkerHandle", "STARTING", "IDLE", "BUSY",
           "CHECKING", "STOPPING", "MEMBER", "SPARE"]


class Pool:
    """Admission, queue, dispatch, deadlines and probes of one worker pool; its workers (who
    they are, spawn, drain, recycle, ...) are its ``WorkerSet`` (``sidecar.pool.lifecycle``)."""

    def __init__(self, loop: Loop, settings: PoolSettings,
                 process_factory: Callable[..., WorkerProcess] = WorkerProcess) -> None:
        self.loop = loop
        self.settings = settings
        self.clock = loop.clock
        self.idle: list[WorkerHandle] = []
        self.queue: deque[Call] = deque()
        self.closing = False
        self.listeners: list[Callable[[PoolEvent], None]] = []
        self.workers = WorkerSet(loop, settings, self, self.publish,
                                 WorkerFactory(loop, settings, process_factory))
        # counters and accumulators of the calls (read by health, scaling and metrics); the
        # workers' counters are the worker set's (``counters`` shows both)
        self.call_counters: dict[str, int] = {"accepted": 0, "succeeded": 0, "probes": 0,
                                              "redispatched": 0}
        self.errors_by_kind: dict[str, int] = {}
        self.busy_seconds_total = 0.0
        self.queue_wait_total = 0.0
        self.queue_wait_count = 0
        self.observe_queue_wait: Callable[[float], None] = lambda seconds: None  # metrics

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

    # ------------------------------------------------------------ the worker set's, for callers
    @property
    def counters(self) -> dict[str, int]:
        return {**self.call_counters, **self.workers.counters}

    @property
    def target_size(self) -> int:
        return self.workers.target_size

    @property
    def spawning(self) -> SpawnPolicy:
        return self.workers.spawning

    def live_count(self) -> int:
        return self.workers.live_count()

    def ready_members(self) -> int:
        return self.workers.ready_members()

    def unavailable_reason(self) -> str:
        return self.workers.unavailable_reason()

    # The verbs supervision, the operator and the tests call (``sidecar.pool.lifecycle``).
    def kill(self, worker: WorkerHandle, reason: str, grace: float | None = None) -> None:
        self.workers.kill(worker, reason, grace)

    def drain(self, worker: WorkerHandle, reason: str = "") -> None:
        self.workers.drain(worker, reason)

    def recycle(self, worker: WorkerHandle, reason: str) -> None:
        self.workers.recycle(worker, reason)

    def recycle_when_free(self, worker: WorkerHandle, reason: str) -> None:
        self.workers.recycle_when_free(worker, reason)

    def take_out_of_service(self, worker: WorkerHandle, reason: str) -> None:
        self.workers.take_out_of_service(worker, reason)

    def renew_workers(self, reason: str) -> int:
        return self.workers.renew_workers(reason)

    def resize(self, size: int) -> None:
        self.workers.resize(size)

    # ------------------------------------------------------------ public API (loop thread)
    def start(self) -> None:
        self.workers.start()

    def submit(self, call: Call) -> None:
        """Accept a call: run it now, queue it, or answer at once (overloaded/unavailable)."""
        self.call_counters["accepted"] += 1
        if self.closing:
            call.fail(protocol.UNAVAILABLE, "the sidecar is shutting down; retry against its "
                      "replacement")
            return
        if self.idle:
            call.timer = self.loop.call_at(call.deadline, lambda: self.expire(call))
            self.start_call(self.idle.pop(), call)
            return
        reason = self.workers.unavailable_reason()
        if reason:
            self.count_error(protocol.UNAVAILABLE)
            call.fail(protocol.UNAVAILABLE, reason)
        elif len(self.queue) >= self.settings.queue_size:
            self.count_error(protocol.OVERLOADED)
            call.fail(protocol.OVERLOADED,
                      f"all {self.workers.live_count()} workers are busy and the queue is full "
                      f"({self.settings.queue_size} calls waiting, python3.pool.queue-size); "
                      "retry later or raise python3.pool.max-size")
        else:
            call.timer = self.loop.call_at(call.deadline, lambda: self.expire(call))
            self.queue.append(call)

    def busy(self) -> bool:
        return bool(self.queue) or any(w.state == BUSY for w in self.workers.values())

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
            self.workers.kill(worker, f"its pipe failed ({exc})")
            if self.idle and self.queue:  # another worker is free: no waiting for a spawn
                self.start_call(self.idle.pop(), self.queue.popleft())

    def dispatch(self, worker: WorkerHandle) -> None:
        """A free member: the next queued call, or the idle list (not if it has exited)."""
        if worker.process.exit is not None or worker.state != IDLE or worker.tainted:
            return
        if self.queue:
            self.start_call(worker, self.queue.popleft())
        else:
            self.idle.append(worker)

    def serve(self, worker: WorkerHandle) -> None:
        """``PoolSide``: the worker set offers a ready member (listed once)."""
        if worker not in self.idle:
            self.dispatch(worker)

    def withdraw(self, worker: WorkerHandle) -> None:
        """``PoolSide``: it takes no more calls."""
        if worker in self.idle:
            self.idle.remove(worker)

    def requeue(self, call: Call) -> None:
        """``PoolSide``: its worker died before reading it; it runs elsewhere, first."""
        self.call_counters["redispatched"] += 1
        self.queue.appendleft(call)

    # ------------------------------------------------------------ replies
    def finish_call(self, worker: WorkerHandle, frame: bytes) -> None:
        """``PoolSide``: the reply to the worker's call: answer it, then the worker's next."""
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
            self.workers.drain(worker)
        elif worker.recycle_after_call:
            self.workers.recycle(worker, worker.recycle_after_call)
        else:
            self.dispatch(worker)

    def answer_from_worker(self, worker: WorkerHandle, call: Call, frame: bytes,
                           seconds: float) -> None:
        """Forward the worker's reply: a success spliced undecoded (``bridge.codec``); any
        other frame decoded, and a decoded success still counted as one."""
        spliced = splice_success(frame, call.rid, worker.id)
        if spliced is not None:  # the hot path: ``record_success`` inlined
            data, wall, cpu = spliced
            if isinstance(wall, float) and isinstance(cpu, float):
                worker.wall_ms.append(wall)
                worker.cpu_ms.append(cpu)
            worker.score.record_success(seconds)
            self.call_counters["succeeded"] += 1
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
        self.call_counters["succeeded"] += 1

    def call_lost(self, worker: WorkerHandle, call: Call, end: dict[str, Any]) -> str:
        """``PoolSide``: the dead worker's unanswered call: ``timeout`` past its deadline, else
        ``crashed`` (effects unknown). A death during expire()'s capture was counted there."""
        if self.clock() >= call.deadline:
            if not worker.timed_out:
                self.count_error(protocol.TIMEOUT)
            call.fail(protocol.TIMEOUT, f"the call ran longer than its timeout of "
                      f"{call.timeout:g}s; {worker.describe()} was stopped", worker=worker.id)
            return protocol.TIMEOUT
        self.count_error(protocol.CRASHED)
        worker.score.record_failure(protocol.CRASHED)
        details = {k: v for k, v in end.items() if k not in ("returncode", "text")}
        call.fail(protocol.CRASHED,
                  f"the Python worker running this call died with {end['text']}; the "
                  "call's effects are unknown; a replacement worker has been started",
                  worker=worker.id, pid=worker.pid, **details)
        return protocol.CRASHED

    def check_memory_after_call(self, worker: WorkerHandle, now: float) -> None:
        rss = worker.sample_rss(now)
        if not worker.rss_baseline and worker.calls:
            worker.rss_baseline = rss
        if self.settings.max_memory and rss > self.settings.max_memory:
            worker.recycle_after_call = (f"its memory ({rss >> 20} MiB) is above "
                                       f"python3.resources.max-memory-per-worker "
                                       f"({self.settings.max_memory >> 20} MiB)")
            self.publish(MemoryHigh(self.settings.name, worker.id, worker.pid, rss))

    # ------------------------------------------------------------ deadlines
    def expire(self, call: Call) -> None:
        if call.done:
            return
        # the worker running it, if any (a worker owns its call; timeouts are rare)
        worker = next((w for w in self.workers.values() if w.call is call), None)
        if worker is None:
            with suppress(ValueError):  # (not queued: nothing to take out)
                self.queue.remove(call)
            self.count_error(protocol.TIMEOUT)
            call.fail(protocol.TIMEOUT,
                      f"the call waited {call.timeout:g}s in the queue and no worker became "
                      f"free; the pool has {self.workers.live_count()} workers, all busy")
            return
        self.count_error(protocol.TIMEOUT)
        worker.score.record_failure(protocol.TIMEOUT)
        worker.timed_out = True  # counted: its death during the capture is not a second one
        reason = f"its call passed the {call.timeout:g}s timeout"
        self.workers.take_out_of_service(worker, reason)

        def answer(stack: str) -> None:
            call.fail(protocol.TIMEOUT,
                      f"the call ran longer than its timeout of {call.timeout:g}s; "
                      f"{worker.describe()} was stopped and is being replaced",
                      worker=worker.id, traceback=stack or None)
            self.publish(CallTimedOut(self.settings.name, worker.id, worker.pid, stack))
            self.workers.kill(worker, reason)

        self.capture_stack(worker, answer)

    def count_error(self, kind: str) -> None:
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    def no_worker_can_start(self) -> None:
        """``PoolSide``: answer every queued call ``unavailable`` (with the reason)."""
        reason = self.workers.unavailable_reason()
        if not reason:
            return
        while self.queue:
            call = self.queue.popleft()
            self.count_error(protocol.UNAVAILABLE)
            call.fail(protocol.UNAVAILABLE, reason)

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
        self.call_counters["probes"] += 1
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
            self.workers.offer(worker)  # a probed spare stays a spare unless one is missing

    def probe_expired(self, worker: WorkerHandle) -> None:
        if worker.state != CHECKING:
            return
        done, worker.probe_done = worker.probe_done, None
        # Out of service at once: it did not answer, so it must not get a user call.
        self.workers.take_out_of_service(worker, "it did not answer a health probe in time")
        if done is not None:
            done(None)

    # ------------------------------------------------------------ stack capture
    def capture_stack(self, worker: WorkerHandle, then: Callable[[str], None],
                      log_stack: bool = True) -> None:
        """Ask the worker for every thread's stack, then ``then(text)`` (``WorkerProcess``)."""
        worker.process.capture_stack(self.settings.stack_capture_wait, then, log_stack)

    # ------------------------------------------------------------ shutdown
    def begin_shutdown(self) -> None:
        self.closing = True
        self.workers.begin_shutdown()

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
        self.idle.clear()
        self.workers.terminate(grace)

    # ------------------------------------------------------------ visibility
    def snapshot(self) -> dict[str, Any]:
        """What the ``health`` op, the metrics and the dashboard read of this pool."""
        now = self.clock()
        workers = self.workers
        states = [w.state for w in workers.values()]
        settings = self.settings
        made = workers.factory.snapshot()
        return {
            "name": settings.name,
            "size": {"target": workers.target_size, "min": settings.min_size,
                     "max": settings.max_size, "live": workers.live_count(),
                     "ready": workers.ready_members(), "spares_wanted": settings.spares,
                     "spares_ready": sum(1 for w in workers.spares() if w.state == IDLE)},
            "workers_by_state": {s: states.count(s) for s in STATES},
            "queue": {"length": len(self.queue), "capacity": settings.queue_size},
            "counters": self.counters,
            "fd_output": made["fd_output"],
            "errors": dict(self.errors_by_kind),
            "spawn": workers.spawning.snapshot(),
            "template": made["template"],
            "workers": [w.report(now) for w in workers.values()],
        }
