"""Worker lifecycle: spawn, ready, promote, drain, kill, recycle, renew, and a worker's end.

``Pool`` (``sidecar.pool.local``) is built from this class: these verbs act on the pool's membership
(``workers``, ``idle``, ``target_size``) and use its dispatch (``worker_available``,
``on_worker_output``) and events (``publish``). Processes are
``sidecar.process.spawn.WorkerProcess``; *whether* a start is allowed is
``sidecar.pool.spawn_policy``'s decision.

Owns: turning a role into a ready worker and a worker into a reaped one (at shutdown too), the
pool's warm template (``sidecar.process.template``: started, renewed and stopped with the pool),
replacement without dropping below the pool's size, the answer a dead worker's call gets,
spawn failures and the restart limit as the pool logs and publishes them. Must not touch:
admission and the queue (``sidecar.pool.local``), descriptors and signals
(``sidecar.process.spawn``), *when* to probe, recycle or resize (``sidecar.supervision.watchdog``,
``sidecar.supervision.recovery``,
``sidecar.supervision.scaling``).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge import protocol
from bridge.codec import unpack_raw
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
from sidecar.pool.settings import PoolSettings
from sidecar.pool.spawn_policy import SpawnPolicy, clamp_size, missing_roles
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
from sidecar.process.fd_output import FdOutput
from sidecar.process.spawn import WorkerProcess, WorkerSpec
from sidecar.process.template import TEMPLATE, WorkerTemplate, template_unsupported
from sidecar.worker import protocol as worker_protocol

log = logging.getLogger("py3sidecar.pool")


class WorkerLifecycle:
    """The lifecycle verbs of ``sidecar.pool.local.Pool`` (the state they use is the pool's)."""

    loop: Loop
    settings: PoolSettings
    clock: Callable[[], float]
    workers: dict[int, WorkerHandle]
    idle: list[WorkerHandle]
    queue: deque[Call]
    target_size: int
    next_worker_id: int
    closing: bool
    spawning: SpawnPolicy
    spawn_timer: Timer | None
    counters: dict[str, int]
    stack_dir: str
    spec: WorkerSpec
    fd_output: FdOutput
    process_factory: Callable[..., WorkerProcess]  # WorkerProcess; a test double in unit tests
    # provided by Pool: dispatch, membership and events
    publish: Callable[[PoolEvent], None]
    worker_available: Callable[[WorkerHandle], None]
    on_worker_output: Callable[[WorkerHandle], list[bytes] | None]
    count_error: Callable[[str], None]
    live_count: Callable[[], int]
    members: Callable[[], list[WorkerHandle]]
    spares: Callable[[], list[WorkerHandle]]
    unavailable_reason: Callable[[], str]

    def spawn_worker(self, role: str = MEMBER) -> WorkerHandle | None:
        settings = self.settings
        wid = self.next_worker_id
        self.next_worker_id += 1
        stack_file = os.path.join(self.stack_dir, f"worker-{wid}.stack")
        try:
            process = self.process_factory(self.loop, self.spec, stack_file=stack_file,
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
        self.publish(WorkerSpawned(settings.name, wid, process.pid, role))
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
        self.worker_available(worker)

    def start_timed_out(self, worker: WorkerHandle) -> None:
        if worker.state == STARTING:
            self.kill(worker, f"it did not get ready within {self.settings.start_timeout:g}s "
                      "(python3.worker.start-timeout)")

    def promote(self, spare: WorkerHandle) -> None:
        """A warm spare becomes a serving member (it takes a dead member's place at once)."""
        spare.role = MEMBER
        log.info("%s promoted from warm spare", spare.describe())
        self.publish(SparePromoted(self.settings.name, spare.id, spare.pid))

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
        self.publish(WorkerRecycled(self.settings.name, worker.id, worker.pid, reason))
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

    def recycle_when_free(self, worker: WorkerHandle, reason: str) -> None:
        """Recycle a busy worker once its call is answered (``finish_call``), another now."""
        if worker.state == BUSY:
            worker.recycle_after_call = worker.recycle_after_call or reason
        else:
            self.recycle(worker, reason)

    def renew_workers(self, reason: str) -> int:
        """Replace every worker gracefully (e.g. the user's code changed on disk). Spares go
        first, so no member is handed an old spare; a worker still starting is replaced once
        ready. Returns how many workers will be renewed."""
        if self.spec.template is not None:  # its preload is stale too: forks come from a new one
            self.spec.template.renew(reason)
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
            self.counters["redispatched"] += 1
            self.queue.appendleft(call)
        worker.process.reap()  # descriptors, its last fd 1/2 words, stack file, its group
        if worker.outside is not None:
            worker.outside.close()
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
        self.publish(WorkerExited(
            self.settings.name, worker.id, worker.pid, expected=expected,
            returncode=end["returncode"], text=text, reason=worker.stop_reason or text,
            during_call=call is not None, rss=worker.rss, starting=was_starting,
            signal=end.get("signal"), signal_name=end.get("signal_name"),
            exit_code=end.get("exit_code")))
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
        self.publish(SpawnFailed(self.settings.name, message, err, resource, failures, delay))
        if self.live_count() == 0:
            self.flush_queue_unavailable()

    def record_restart(self) -> None:
        if not self.spawning.restarted():
            return
        restarts, window = len(self.spawning.restarts), self.settings.restart_window
        log.critical("restart limit reached: %d worker restarts within %gs "
                     "(python3.pool.max-restarts); next start at +%.1fs",
                     restarts, window, self.spawning.wait())
        self.publish(RestartLimit(self.settings.name, restarts, window))

    def start_template(self) -> None:
        """The warm template workers are forked from (``sidecar.process.template``), if this pool
        uses one: started with the pool; until it is ready, workers are spawned plain."""
        reason = template_unsupported(self.settings)
        if reason or self.process_factory is not WorkerProcess:  # doubles spawn by themselves
            if self.settings.spawn == TEMPLATE and reason:
                log.info("pool %s spawns its workers plain: %s", self.settings.name, reason)
            return
        self.spec = replace(self.spec, template=WorkerTemplate(self.loop, self.settings,
                                                                self.spec))
        self.spec.template.start()

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
        if self.spec.template is not None:
            self.spec.template.close(deadline)
        for worker in list(self.workers.values()):
            worker.process.wait(deadline)
            # Idle workers exit on EOF by themselves, but what their calls spawned lives on in
            # their process group: nothing the pool started may outlive the sidecar's stop.
            worker.process.reap()
            if worker.outside is not None:
                worker.outside.close()
        self.workers.clear()
        self.idle.clear()
        for leftover in Path(self.stack_dir).glob("*"):
            leftover.unlink(missing_ok=True)
        try:
            os.rmdir(self.stack_dir)
        except OSError:
            pass
