"""The worker set: who the pool's workers are, and their lifecycle from spawn to reaping.

``Pool`` (``sidecar.pool.local``) holds one ``WorkerSet``, as distributed's worker holds its
``WorkerMemoryManager``. A reply travels one way: the worker's pipe -> ``on_output`` reads the
frame and checks the worker -> ``PoolSide.finish_call`` (the pool answers the call and dispatches
the next). The pool commands the set (``kill``, ``drain``, ``recycle``...); the set tells the pool
only through ``PoolSide``. Workers are made by ``sidecar.pool.factory``; *whether* a start is
allowed is ``sidecar.pool.spawn_policy``'s decision.

Owns: membership (the ``WorkerHandle``s, members and warm spares, the target size), turning a
role into a ready worker and a worker into a reaped one, the frames workers write, taint (a call
left code running), replacement without dropping below the pool's size, spawn failures and the
restart limit as the pool logs and publishes them. Must not touch: admission, the queue, the idle
list, a call's answer (``sidecar.pool.local``), descriptors and signals
(``sidecar.process.spawn``), *when* to probe, recycle or resize (``sidecar.supervision``).
"""

from __future__ import annotations

import errno
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol

from bridge import protocol
from bridge.codec import unpack_raw
from sidecar.channel import FrameTooLarge
from sidecar.loop import Loop, Timer
from sidecar.platform.procfs import OutsideView
from sidecar.pool.call import Call
from sidecar.pool.events import (
    PoolEvent,
    RestartLimit,
    SparePromoted,
    SpawnFailed,
    WorkerExited,
    WorkerReady,
    WorkerRecycled,
    WorkerSpawned,
)
from sidecar.pool.factory import WorkerFactory
from sidecar.pool.settings import PoolSettings
from sidecar.pool.spawn_policy import SpawnLimits, SpawnPolicy, clamp_size, missing_roles
from sidecar.pool.worker_handle import (
    BUSY,
    CHECKING,
    IDLE,
    MEMBER,
    SPARE,
    STARTING,
    STOPPING,
    WorkerHandle,
)
from sidecar.worker import protocol as worker_protocol

log = logging.getLogger("py3sidecar.pool")

# A worker's report that its call left threads/children behind (sidecar.worker.isolation)


class PoolSide(Protocol):
    """What the worker set tells the pool (``sidecar.pool.local.Pool``), and nothing more."""

    def serve(self, worker: WorkerHandle) -> None: ...  # a ready member is free (listed once)
    def finish_call(self, worker: WorkerHandle, frame: bytes) -> None: ...  # its call's reply
    def finish_probe(self, worker: WorkerHandle, reply: dict[str, Any] | None) -> None: ...
    def withdraw(self, worker: WorkerHandle) -> None: ...  # it takes no more calls
    def requeue(self, call: Call) -> None: ...  # its worker died before reading it
    # its worker ended with the call unanswered: answer it, return the error kind
    def call_lost(self, worker: WorkerHandle, call: Call, end: dict[str, Any]) -> str: ...
    def no_worker_can_start(self) -> None: ...  # queued calls must not wait in vain


class WorkerSet(Mapping[int, WorkerHandle]):
    """The pool's workers by id (a read-only mapping) and the verbs of their lifecycle."""

    def __init__(self, loop: Loop, settings: PoolSettings, pool: PoolSide,
                 publish: Callable[[PoolEvent], None], factory: WorkerFactory) -> None:
        self.loop = loop
        self.settings = settings
        self.clock = loop.clock
        self.pool = pool
        self.publish = publish
        self.factory = factory
        self.handles: dict[int, WorkerHandle] = {}
        self.target_size = settings.initial_size
        self.closing = False
        self.spawning = SpawnPolicy(SpawnLimits(
            settings.max_restarts, settings.restart_window, settings.backoff_initial,
            settings.backoff_max), self.clock)
        self.spawn_timer: Timer | None = None
        self.counters: dict[str, int] = {"spawned": 0, "spawn_failures": 0, "crashes": 0,
                                         "kills": 0, "recycled": 0}

    # ------------------------------------------------------------ the mapping (by worker id)
    def __getitem__(self, wid: int) -> WorkerHandle:
        return self.handles[wid]

    def __iter__(self) -> Iterator[int]:
        return iter(self.handles)

    def __len__(self) -> int:
        return len(self.handles)

    def values(self) -> Any:  # the dict's own view: cheap, and live (Mapping's walks by key)
        return self.handles.values()

    # ------------------------------------------------------------ membership
    def members(self) -> list[WorkerHandle]:
        """Serving workers (not spares), excluding those on their way out."""
        return [w for w in self.handles.values()
                if w.role == MEMBER and w.state != STOPPING and w.replaced_by is None]

    def spares(self) -> list[WorkerHandle]:
        return [w for w in self.handles.values() if w.role == SPARE and w.state != STOPPING]

    def live_count(self) -> int:
        return sum(1 for w in self.handles.values() if w.role == MEMBER and w.state != STOPPING)

    def ready_members(self) -> int:
        return sum(1 for w in self.handles.values()
                   if w.role == MEMBER and w.state in (IDLE, BUSY, CHECKING))

    def unavailable_reason(self) -> str:
        """Non-empty when no worker exists nor is about to: callers must not wait in vain."""
        if self.live_count() or self.spares():
            return ""
        return self.spawning.why_none_can_start()

    def offer(self, worker: WorkerHandle) -> None:
        """A ready worker may serve; a ready spare only in a missing member's place."""
        if worker.exit is not None or worker.state != IDLE or worker.tainted:
            return
        if worker.role == SPARE:
            if self.live_count() >= self.target_size or self.closing:
                return  # a ready spare waits, warm, outside the idle list
            self.promote(worker)
        self.pool.serve(worker)

    # ------------------------------------------------------------ what a worker writes
    def on_output(self, worker: WorkerHandle) -> list[bytes] | None:
        """Read what the worker wrote and hand it on; None when nothing was there to read."""
        try:
            frames = worker.reader.feed()
        except FrameTooLarge as exc:
            self.kill(worker, f"it broke the protocol: {exc}")
            return None
        for frame in frames or ():
            state = worker.state
            if frame.startswith(worker_protocol.LEFT_BEHIND_PREFIX) and state != STARTING:
                self.taint(worker, unpack_raw(frame))
            elif state == BUSY:
                if not worker.tainted and worker.threads_at_ready:
                    seen = worker.left_behind()  # the kernel's count, before the answer
                    if seen:
                        self.taint(worker, {"reasons": [seen]})
                self.pool.finish_call(worker, frame)
            elif state == CHECKING:
                self.pool.finish_probe(worker, unpack_raw(frame))
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
            worker.recycle_after_call = worker.tainted  # the pool recycles it once answered
            return
        self.pool.withdraw(worker)  # told late: a forged reply came first
        if worker.state in (IDLE, CHECKING):
            self.recycle(worker, worker.tainted)

    # ------------------------------------------------------------ spawn and ready
    def start(self) -> None:
        self.factory.start_template()
        self.ensure_capacity()

    def spawn_worker(self, role: str = MEMBER) -> WorkerHandle | None:
        try:
            worker = self.factory.make(role)
        except OSError as exc:
            self.spawn_failed(f"{type(exc).__name__}: {exc} "
                              f"(command: {self.settings.python[0]})", exc.errno)
            return None
        process = worker.process
        process.on_write_error = lambda exc: self.kill(worker, f"its pipe failed ({exc})")
        self.handles[worker.id] = worker
        process.watch(partial(self.on_output, worker), partial(self.on_exit, worker))
        worker.start_timer = self.loop.call_later(self.settings.start_timeout,
                                                  lambda: self.start_timed_out(worker))
        self.counters["spawned"] += 1
        self.publish(WorkerSpawned(self.settings.name, worker.id, process.pid, role))
        return worker

    def on_ready(self, worker: WorkerHandle, frame: bytes) -> None:
        message = unpack_raw(frame)
        if message.get("op") != worker_protocol.READY:
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
        worker.outside = OutsideView(worker.pid)
        worker.threads_at_ready = max(0, worker.outside.read()[0])
        log.debug("%s ready in %.1f ms", worker.describe(), (now - worker.spawned_at) * 1000)
        self.publish(WorkerReady(self.settings.name, worker.id, worker.pid, worker.role,
                                 now - worker.spawned_at))
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            self.drain(old)
        if worker.recycle_when_ready:  # started on code that has changed since
            reason, worker.recycle_when_ready = worker.recycle_when_ready, ""
            self.recycle(worker, reason)  # serves, if nothing else can, until replaced
            return
        self.offer(worker)

    def start_timed_out(self, worker: WorkerHandle) -> None:
        if worker.state == STARTING:
            self.kill(worker, f"it did not get ready within {self.settings.start_timeout:g}s "
                      "(python3.worker.start-timeout)")

    def promote(self, spare: WorkerHandle) -> None:
        """A warm spare becomes a serving member (it takes a dead member's place at once)."""
        spare.role = MEMBER
        log.info("%s promoted from warm spare", spare.describe())
        self.publish(SparePromoted(self.settings.name, spare.id, spare.pid))

    # ------------------------------------------------------------ out of service
    def take_out_of_service(self, worker: WorkerHandle, reason: str) -> None:
        """No new calls for this worker; its place is filled at once (spare or spawn)."""
        if worker.state == STOPPING:
            return
        was_starting = worker.state == STARTING
        worker.state = STOPPING
        worker.stop_reason = reason
        self.pool.withdraw(worker)
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
        self.publish(WorkerRecycled(self.settings.name, worker.id, worker.pid, reason))
        ready_spares = [w for w in self.spares() if w.state == IDLE and w is not worker]
        if ready_spares or worker.role == SPARE:
            if worker.role == MEMBER:
                self.promote(ready_spares[0])
            worker.replaced_by = ready_spares[0].id if ready_spares else -1
            self.drain(worker)
            if ready_spares:
                self.offer(ready_spares[0])
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
        # worker may already be on the idle list (recycled by recovery or a reload, not after
        # a call): ``serve`` lists it once.
        if worker.state == IDLE:
            self.offer(worker)

    def recycle_when_free(self, worker: WorkerHandle, reason: str) -> None:
        """Recycle a busy worker once its call is answered (``Pool.finish_call``), another now."""
        if worker.state == BUSY:
            worker.recycle_after_call = worker.recycle_after_call or reason
        else:
            self.recycle(worker, reason)

    def renew_workers(self, reason: str) -> int:
        """Replace every worker gracefully (e.g. the user's code changed on disk). Spares go
        first, so no member is handed an old spare; a worker still starting is replaced once
        ready. Returns how many workers will be renewed."""
        self.factory.renew_template(reason)  # forks come from a new template
        stale = sorted((w for w in self.handles.values()
                        if w.state != STOPPING and w.replaced_by is None),
                       key=lambda w: w.role != SPARE)
        for worker in stale:
            if worker.state == STARTING:
                worker.recycle_when_ready = reason
            else:
                self.recycle(worker, reason)
        return len(stale)

    # ------------------------------------------------------------ a worker's end
    def on_exit(self, worker: WorkerHandle) -> None:
        end = worker.process.poll_exit()
        if end is None:
            return  # spurious wake-up: pidfd readable only once the process has exited
        # Read what the worker managed to send before it died (a reply racing its exit). The
        # read is non-blocking: a child the user's code forked may still hold the pipe open.
        for _ in range(256):
            if worker.reader.eof or self.on_output(worker) is None:
                break
        for timer in (worker.kill_timer, worker.start_timer, worker.probe_timer):
            if timer is not None:
                timer.cancel()
        call = worker.call
        if call is not None and not call.done and worker.process.never_read(
                len(call.payload) + 4):
            worker.call = None  # it died before reading this request: the call never started
            self.pool.requeue(call)
        worker.process.reap()  # descriptors, its last fd 1/2 words, stack file, its group
        if worker.outside is not None:
            worker.outside.close()
        self.handles.pop(worker.id, None)
        self.pool.withdraw(worker)
        call, worker.call = worker.call, None
        expected = worker.state == STOPPING
        was_starting = worker.state == STARTING
        if worker.probe_done is not None:
            done, worker.probe_done = worker.probe_done, None
            done(None)
        lost = self.pool.call_lost(worker, call, end) if call is not None and not call.done else ""
        if lost == protocol.CRASHED or (not lost and not expected):
            self.counters["crashes"] += 1
        worker.state = STOPPING
        self.report_exit(worker, end, expected, was_starting, call is not None)
        if worker.replaces is not None:  # a replacement died before it took over
            worker.replaces.replaced_by = None
            if worker.replaces.tainted:  # it waits for no replacement: out, refilled below
                self.drain(worker.replaces)
            worker.replaces = None
        if was_starting:
            self.spawn_failed(f"{worker.describe()} exited with {end['text']} before it was "
                              "ready", None)
        if not self.closing:
            if not expected and not was_starting:
                self.record_restart()
            self.ensure_capacity()

    def report_exit(self, worker: WorkerHandle, end: dict[str, Any], expected: bool,
                    was_starting: bool, during_call: bool) -> None:
        text = end["text"]
        log.log(logging.INFO if expected else logging.ERROR, "%s exited with %s%s",
                worker.describe(), text, f" ({worker.stop_reason})" if worker.stop_reason else "")
        self.publish(WorkerExited(
            self.settings.name, worker.id, worker.pid, expected=expected,
            returncode=end["returncode"], text=text, reason=worker.stop_reason or text,
            during_call=during_call, rss=worker.rss, starting=was_starting,
            signal=end.get("signal"), signal_name=end.get("signal_name"),
            exit_code=end.get("exit_code")))

    # ------------------------------------------------------------ bounded replacement
    def spawn_failed(self, message: str, err: int | None) -> None:
        self.counters["spawn_failures"] += 1
        delay = self.spawning.spawn_failed(message)
        failures = self.spawning.failures
        resource = err in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)
        log.error("could not start a Python worker (%d in a row, next try in %.2fs): %s",
                  failures, delay, message)
        self.publish(SpawnFailed(self.settings.name, message, err, resource, failures, delay))
        if self.live_count() == 0:
            self.pool.no_worker_can_start()

    def record_restart(self) -> None:
        if not self.spawning.restarted():
            return
        restarts, window = len(self.spawning.restarts), self.settings.restart_window
        log.critical("restart limit reached: %d worker restarts within %gs "
                     "(python3.pool.max-restarts); next start at +%.1fs",
                     restarts, window, self.spawning.wait())
        self.publish(RestartLimit(self.settings.name, restarts, window))

    def ensure_capacity(self) -> None:
        """Fill missing members (promoting warm spares first) and missing spares."""
        if self.closing:
            return
        spares = self.spares()
        while self.live_count() < self.target_size and spares:
            spare = next((w for w in spares if w.state == IDLE), spares[0])
            spares.remove(spare)
            self.promote(spare)
            self.offer(spare)
        missing = missing_roles(self.target_size, self.live_count(), self.settings.spares,
                                len(spares))
        if not missing:
            return
        if self.spawning.wait() > 0:
            if self.spawn_timer is None:
                self.spawn_timer = self.loop.call_at(self.spawning.next_at,
                                                     self._spawn_timer_fired)
            if self.live_count() == 0:
                self.pool.no_worker_can_start()
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

    # ------------------------------------------------------------ shutdown
    def begin_shutdown(self) -> None:
        self.closing = True
        if self.spawn_timer:
            self.spawn_timer.cancel()

    def terminate(self, grace: float = 2.0) -> None:
        """Stop every worker and wait (bounded) for them to exit; their calls are answered
        (``Pool.terminate``)."""
        self.closing = True
        for worker in list(self.handles.values()):
            worker.process.close_input()
            if worker.state in (BUSY, STOPPING, CHECKING):
                worker.process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        self.factory.close(deadline)
        for worker in list(self.handles.values()):
            worker.process.wait(deadline)
            # Idle workers exit on EOF by themselves, but what their calls spawned lives on in
            # their process group: nothing the pool started may outlive the sidecar's stop.
            worker.process.reap()
            if worker.outside is not None:
                worker.outside.close()
        self.handles.clear()
        self.factory.remove_stack_dir()
