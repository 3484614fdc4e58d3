"""The worker pool: queue, dispatch, timeouts, crash detection and bounded replacement.

Data flow (all in the sidecar's one loop thread, see ``sidecar.loop``)::

    submit(call) --idle worker?--> start_call: frame -> worker's in-pipe
         |  no                                 |
         v                                     v  (worker runs user code)
    FIFO queue (bounded:            worker's out-pipe readable -> on_worker_output
    full -> overloaded)                -> reply spliced with id + worker -> call.answer()
         ^                             -> worker idle again -> next queued call
         +------------------------------------+
    deadline timer per call: queued -> ``timeout``; running -> kill worker, ``timeout``
    pidfd readable (worker exited) -> in-flight call ``crashed`` (exit code / signal),
                                       queued calls untouched, replacement spawned at once
    spawns bounded: back-off after failures, at most ``max_restarts`` per ``restart_window``

Owns: worker processes and their lifecycle, the queue, per-call deadlines, exactly one answer
per call. Must not touch: framing details (``sidecar.channel``), value encoding (``bridge.codec``),
sockets facing clients (the fronts) or config files (``sidecar.config`` builds ``PoolSettings``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import protocol
from bridge.codec import pack_raw, unpack_raw
from sidecar.channel import FrameReader, FrameTooLarge, encode_frame
from sidecar.loop import Loop, Timer

log = logging.getLogger("py3sidecar.pool")

PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)

# A worker's successful reply starts with a 5-member map whose first member is ok=true; the pool
# forwards it without decoding the value: new map header + id + worker + the worker's members.
_OK_PREFIX = b"\x85\xa2ok\xc3"
_SPLICED_HEADER = b"\x87\xa2id"
_WORKER_KEY = b"\xa6worker"

STARTING, IDLE, BUSY, STOPPING = "starting", "idle", "busy", "stopping"


@dataclass
class PoolSettings:
    """Everything the pool needs, already validated (see ``sidecar.config``)."""

    name: str = "primary"
    initial_size: int = 2
    min_size: int = 1
    max_size: int = 4
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


class Call:
    """One accepted request on its way through the pool; answered exactly once."""

    __slots__ = ("rid", "payload", "timeout", "accepted_at", "deadline", "reply", "timer",
                 "worker", "started_at", "done", "outcome")

    def __init__(self, rid: Any, payload: bytes, timeout: float, reply: Callable[[bytes], None],
                 now: float) -> None:
        self.rid = rid
        self.payload = payload
        self.timeout = timeout
        self.accepted_at = now
        self.deadline = now + timeout
        self.reply = reply
        self.timer: Timer | None = None
        self.worker: WorkerHandle | None = None
        self.started_at = 0.0
        self.done = False
        self.outcome: str | None = None  # None = success, else the error kind

    def answer(self, data: bytes, outcome: str | None = None) -> bool:
        if self.done:
            return False
        self.done = True
        self.outcome = outcome
        if self.timer is not None:
            self.timer.cancel()
        try:
            self.reply(data)
        except Exception:
            log.exception("could not deliver the reply to request %r", self.rid)
        return True

    def fail(self, kind: str, message: str, **extra: Any) -> bool:
        return self.answer(pack_raw(protocol.error_reply(self.rid, kind, message, **extra)), kind)


class WorkerHandle:
    """The pool's view of one worker process."""

    __slots__ = ("id", "proc", "pid", "pidfd", "to_worker", "reader", "state", "call", "calls",
                 "spawned_at", "ready_at", "last_used", "kill_timer", "start_timer", "exit",
                 "stop_reason", "preload_errors")

    def __init__(self, wid: int, proc: subprocess.Popen, to_worker: int, from_worker: int,
                 pidfd: int, max_message: int, now: float) -> None:
        self.id = wid
        self.proc = proc
        self.pid = proc.pid
        self.pidfd = pidfd
        self.to_worker = to_worker
        self.reader = FrameReader(from_worker, max_message)
        self.state = STARTING
        self.call: Call | None = None
        self.calls = 0
        self.spawned_at = now
        self.ready_at = 0.0
        self.last_used = 0.0
        self.kill_timer: Timer | None = None
        self.start_timer: Timer | None = None
        self.exit: dict[str, Any] | None = None
        self.stop_reason = ""
        self.preload_errors: list[str] = []

    def describe(self) -> str:
        return f"worker {self.id} (pid {self.pid})"


def describe_exit(returncode: int | None) -> tuple[str, dict[str, Any]]:
    """Human text and wire details for a process's end."""
    if returncode is None:
        return "an unknown status", {}
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        hint = ""
        if signum == signal.SIGKILL:
            hint = " (killed from outside: the out-of-memory killer, an operator or a limit)"
        elif signum == signal.SIGSEGV:
            hint = " (a segmentation fault in native code)"
        return f"signal {signum} ({name}){hint}", {"signal": signum, "signal_name": name}
    return f"exit code {returncode}", {"exit_code": returncode}


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
        self.restarts: deque[float] = deque()
        self.spawn_failures = 0
        self.last_spawn_error = ""
        self.next_spawn_at = 0.0
        self.spawn_timer: Timer | None = None
        # counters
        self.counters: dict[str, int] = {"accepted": 0, "succeeded": 0, "spawned": 0,
                                         "spawn_failures": 0, "crashes": 0, "kills": 0}
        self.errors_by_kind: dict[str, int] = {}
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._worker_settings = json.dumps({
            "paths": settings.paths, "preload": settings.preload,
            "max_output_chars": settings.max_output_chars,
            "max_message_bytes": settings.max_message_bytes})
        self._env = dict(os.environ)
        self._env.update(settings.env)
        self._env["PYTHONPATH"] = os.pathsep.join(
            p for p in (PROJECT_ROOT, self._env.get("PYTHONPATH", "")) if p)

    # ------------------------------------------------------------ events
    def subscribe(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """``listener(event, info)`` for worker_spawned/ready/exited, spawn_failed, ..."""
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
        for _ in range(self.target_size):
            self.spawn_worker()

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
            call.fail(protocol.UNAVAILABLE, reason)
        elif len(self.queue) >= self.settings.queue_size:
            call.fail(protocol.OVERLOADED,
                      f"all {self.live_count()} workers are busy and the queue is full "
                      f"({self.settings.queue_size} calls waiting, python3.pool.queue-size); "
                      "retry later or raise python3.pool.max-size")
        else:
            call.timer = self.loop.call_at(call.deadline, lambda: self.expire(call))
            self.queue.append(call)

    def live_count(self) -> int:
        return sum(1 for w in self.workers.values() if w.state != STOPPING)

    def busy(self) -> bool:
        return bool(self.queue) or any(w.state == BUSY for w in self.workers.values())

    def unavailable_reason(self) -> str:
        """Non-empty when no worker exists nor is about to: callers must not wait in vain."""
        if self.live_count():
            return ""
        if self.spawn_failures:
            return (f"no Python worker could be started ({self.spawn_failures} failed attempts; "
                    f"last: {self.last_spawn_error}); next attempt in "
                    f"{max(0.0, self.next_spawn_at - self.clock()):.1f}s")
        if self.next_spawn_at > self.clock():
            return (f"workers keep dying: the restart limit of {self.settings.max_restarts} per "
                    f"{self.settings.restart_window:g}s is reached; next start in "
                    f"{self.next_spawn_at - self.clock():.1f}s")
        return ""

    # ------------------------------------------------------------ dispatch
    def start_call(self, worker: WorkerHandle, call: Call) -> None:
        worker.state = BUSY
        worker.call = call
        call.worker = worker
        call.started_at = self.clock()
        try:
            self.write(worker, call.payload)
        except OSError as exc:
            # The worker died before it read the request: the call never started, so it goes
            # back to the front of the queue for another worker.
            worker.call = None
            call.worker = None
            self.queue.appendleft(call)
            self.retire(worker, f"its pipe failed ({exc})", kill=True)

    def write(self, worker: WorkerHandle, payload: bytes) -> None:
        data = memoryview(encode_frame(payload))
        while data:
            try:
                data = data[os.write(worker.to_worker, data):]
            except BlockingIOError:
                os.set_blocking(worker.to_worker, True)  # a big request: let it drain

    def on_worker_output(self, worker: WorkerHandle) -> list[bytes] | None:
        """Handle what the worker wrote; None when nothing was there to read."""
        try:
            frames = worker.reader.feed()
        except FrameTooLarge as exc:
            self.retire(worker, f"it broke the protocol: {exc}", kill=True)
            return None
        for frame in frames or ():
            if worker.state == BUSY:
                self.finish_call(worker, frame)
            elif worker.state == STARTING:
                self.on_ready(worker, frame)
            # frames from a stopping worker are stale: its call was already answered
        if worker.reader.eof:
            self.loop.remove_reader(worker.reader.fd)
            if worker.exit is None and worker.state != STOPPING:
                # Usually the process is exiting and its pidfd fires within microseconds. If it
                # lives on (user code closed our descriptors) it can no longer be used: end it.
                worker.kill_timer = self.loop.call_later(
                    0.2, lambda: self.retire(worker, "it closed its channel", kill=True,
                                             grace=0.2))
        return frames

    def finish_call(self, worker: WorkerHandle, frame: bytes) -> None:
        call = worker.call
        worker.call = None
        worker.calls += 1
        worker.last_used = self.clock()
        if call is not None and not call.done:
            if frame[:5] == _OK_PREFIX:
                call.answer(_SPLICED_HEADER + pack_raw(call.rid) + _WORKER_KEY
                            + pack_raw(worker.id) + frame[1:])
                self.counters["succeeded"] += 1
            else:
                reply = unpack_raw(frame)
                reply["id"] = call.rid
                reply["worker"] = worker.id
                kind = reply.get("error", {}).get("kind", protocol.INTERNAL)
                self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
                call.answer(pack_raw(reply), kind)
            if self.listeners:
                self.publish("call_finished", worker=worker.id, outcome=call.outcome,
                             seconds=worker.last_used - call.started_at)
        if worker.state == STOPPING:
            return
        worker.state = IDLE
        self.worker_available(worker)

    def worker_available(self, worker: WorkerHandle) -> None:
        if worker.exit is not None or worker.state != IDLE:
            return
        if self.closing and not self.queue:
            self.idle.append(worker)
            return
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
        call.fail(protocol.TIMEOUT,
                  f"the call ran longer than its timeout of {call.timeout:g}s; "
                  f"{worker.describe()} was stopped and is being replaced",
                  worker=worker.id)
        self.publish("call_timed_out", worker=worker.id, pid=worker.pid)
        self.retire(worker, f"its call passed the {call.timeout:g}s timeout", kill=True)

    def count_error(self, kind: str) -> None:
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1

    # ------------------------------------------------------------ worker lifecycle
    def spawn_worker(self) -> WorkerHandle | None:
        settings = self.settings
        wid = self.next_worker_id
        self.next_worker_id += 1
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        argv = [*settings.python, "-m", "sidecar.worker", "--in", str(to_r), "--out",
                str(from_w), "--settings", self._worker_settings]
        try:
            proc = subprocess.Popen(argv, pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL,
                                    env=self._env, start_new_session=True)
        except OSError as exc:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            self.spawn_failed(f"{type(exc).__name__}: {exc} (command: {settings.python[0]})",
                              exc.errno)
            return None
        os.close(to_r)
        os.close(from_w)
        os.set_blocking(from_r, False)
        pidfd = os.pidfd_open(proc.pid)
        now = self.clock()
        worker = WorkerHandle(wid, proc, to_w, from_r, pidfd, settings.max_message_bytes, now)
        self.workers[wid] = worker
        self.loop.add_reader(from_r, lambda: self.on_worker_output(worker))
        self.loop.add_reader(pidfd, lambda: self.on_worker_exit(worker))
        worker.start_timer = self.loop.call_later(settings.start_timeout,
                                                  lambda: self.start_timed_out(worker))
        self.counters["spawned"] += 1
        self.publish("worker_spawned", worker=wid, pid=proc.pid)
        return worker

    def on_ready(self, worker: WorkerHandle, frame: bytes) -> None:
        message = unpack_raw(frame)
        if message.get("op") != "ready":
            self.retire(worker, f"it sent {message!r} instead of its ready message", kill=True)
            return
        if worker.start_timer:
            worker.start_timer.cancel()
        worker.ready_at = self.clock()
        worker.preload_errors = list(message.get("preload_errors") or ())
        for problem in worker.preload_errors:
            log.error("%s could not preload %s (python3.worker.preload)",
                      worker.describe(), problem)
        self.spawn_failures = 0
        worker.state = IDLE
        log.debug("%s ready in %.1f ms", worker.describe(),
                  (worker.ready_at - worker.spawned_at) * 1000)
        self.publish("worker_ready", worker=worker.id, pid=worker.pid,
                     seconds=worker.ready_at - worker.spawned_at)
        self.worker_available(worker)

    def start_timed_out(self, worker: WorkerHandle) -> None:
        if worker.state == STARTING:
            self.retire(worker, f"it did not get ready within {self.settings.start_timeout:g}s "
                        "(python3.worker.start-timeout)", kill=True)

    def retire(self, worker: WorkerHandle, reason: str, *, kill: bool,
               grace: float | None = None) -> None:
        """Take a worker out of service; with ``kill`` end it (SIGTERM, grace, SIGKILL)."""
        if worker.state == STOPPING:
            return
        was_starting = worker.state == STARTING
        worker.state = STOPPING
        worker.stop_reason = reason
        if worker in self.idle:
            self.idle.remove(worker)
        log.warning("%s is being replaced: %s", worker.describe(), reason)
        if kill:
            self.counters["kills"] += 1
            self.signal(worker, signal.SIGTERM)
            worker.kill_timer = self.loop.call_later(
                self.settings.kill_grace if grace is None else grace,
                lambda: self.signal(worker, signal.SIGKILL))
        else:
            self.close_channel(worker)
        if was_starting:
            self.spawn_failed(f"{worker.describe()} failed to start: {reason}", None)
        self.ensure_capacity()

    def signal(self, worker: WorkerHandle, signum: int) -> None:
        if worker.exit is not None:
            return
        try:
            os.killpg(worker.pid, signum)  # the worker leads its own group: its children too
        except ProcessLookupError:
            pass
        except PermissionError:
            try:
                os.kill(worker.pid, signum)
            except ProcessLookupError:
                pass

    def close_channel(self, worker: WorkerHandle) -> None:
        if worker.to_worker >= 0:
            try:
                os.close(worker.to_worker)  # EOF on its in-pipe: the worker exits on its own
            except OSError:
                pass
            worker.to_worker = -1

    def on_worker_exit(self, worker: WorkerHandle) -> None:
        returncode = worker.proc.poll()
        if returncode is None:
            return  # spurious wake-up: pidfd readable only once the process has exited
        self.loop.remove_reader(worker.pidfd)
        text, details = describe_exit(returncode)
        worker.exit = {"returncode": returncode, "text": text, **details}
        # Read what the worker managed to send before it died (a reply racing its exit). The
        # read is non-blocking: a child the user's code forked may still hold the pipe open.
        for _ in range(256):
            if worker.reader.eof or self.on_worker_output(worker) is None:
                break
        if worker.kill_timer:
            worker.kill_timer.cancel()
        if worker.start_timer:
            worker.start_timer.cancel()
        self.loop.remove_reader(worker.reader.fd)
        for fd in (worker.reader.fd, worker.pidfd):
            os.close(fd)
        self.close_channel(worker)
        # Kill anything the user's code left behind in the worker's process group.
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.workers.pop(worker.id, None)
        if worker in self.idle:
            self.idle.remove(worker)
        call = worker.call
        worker.call = None
        expected = worker.state == STOPPING
        if call is not None and not call.done:
            self.counters["crashes"] += 1
            self.count_error(protocol.CRASHED)
            call.fail(protocol.CRASHED,
                      f"the Python worker running this call died with {text}; the call's "
                      "effects are unknown; a replacement worker has been started",
                      worker=worker.id, **details)
        elif not expected:
            self.counters["crashes"] += 1
        was_starting = worker.state == STARTING
        worker.state = STOPPING
        log.log(logging.INFO if expected else logging.ERROR, "%s exited with %s%s",
                worker.describe(), text, f" ({worker.stop_reason})" if worker.stop_reason else "")
        self.publish("worker_exited", worker=worker.id, pid=worker.pid, expected=expected,
                     returncode=returncode, reason=worker.stop_reason or text)
        if was_starting:
            self.spawn_failed(f"{worker.describe()} exited with {text} before it was ready", None)
        if not self.closing:
            if not expected and not was_starting:
                self.record_restart()
            self.ensure_capacity()

    # ------------------------------------------------------------ bounded replacement
    def spawn_failed(self, message: str, err: int | None) -> None:
        self.spawn_failures += 1
        self.counters["spawn_failures"] += 1
        self.last_spawn_error = message
        delay = min(self.settings.backoff_initial * 2 ** (self.spawn_failures - 1),
                    self.settings.backoff_max)
        self.next_spawn_at = max(self.next_spawn_at, self.clock() + delay)
        resource = err in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)
        log.error("could not start a Python worker (%d in a row, next try in %.2fs): %s",
                  self.spawn_failures, delay, message)
        self.publish("spawn_failed", message=message, errno=err, resource_exhaustion=resource,
                     failures=self.spawn_failures, retry_in=delay)
        if self.live_count() == 0:
            self.flush_queue_unavailable()

    def record_restart(self) -> None:
        now = self.clock()
        window = self.settings.restart_window
        self.restarts.append(now)
        while self.restarts and self.restarts[0] <= now - window:
            self.restarts.popleft()
        if len(self.restarts) >= self.settings.max_restarts:
            self.next_spawn_at = max(self.next_spawn_at, self.restarts[0] + window)
            log.critical("restart limit reached: %d worker restarts within %gs "
                         "(python3.pool.max-restarts); next start at +%.1fs",
                         len(self.restarts), window, self.next_spawn_at - now)
            self.publish("restart_limit", restarts=len(self.restarts), window=window)

    def ensure_capacity(self) -> None:
        if self.closing:
            return
        missing = self.target_size - self.live_count()
        if missing <= 0:
            return
        now = self.clock()
        if now < self.next_spawn_at:
            if self.spawn_timer is None:
                self.spawn_timer = self.loop.call_at(self.next_spawn_at, self._spawn_timer_fired)
            if self.live_count() == 0:
                self.flush_queue_unavailable()
            return
        for _ in range(missing):
            if self.spawn_worker() is None:
                self.ensure_capacity()  # arms the back-off timer
                break

    def _spawn_timer_fired(self) -> None:
        self.spawn_timer = None
        self.ensure_capacity()

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
            self.close_channel(worker)
            if worker.state in (BUSY, STOPPING):
                self.signal(worker, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in list(self.workers.values()):
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(worker, signal.SIGKILL)
                try:
                    worker.proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    log.error("%s did not exit even after SIGKILL", worker.describe())
            for fd in (worker.reader.fd, worker.pidfd):
                self.loop.remove_reader(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.workers.clear()
        self.idle.clear()

    # ------------------------------------------------------------ visibility
    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        states = [w.state for w in self.workers.values()]
        return {
            "name": self.settings.name,
            "size": {"target": self.target_size, "min": self.settings.min_size,
                     "max": self.settings.max_size, "live": self.live_count()},
            "workers_by_state": {s: states.count(s) for s in (STARTING, IDLE, BUSY, STOPPING)},
            "queue": {"length": len(self.queue), "capacity": self.settings.queue_size},
            "counters": dict(self.counters),
            "errors": dict(self.errors_by_kind),
            "spawn": {"consecutive_failures": self.spawn_failures,
                      "last_error": self.last_spawn_error,
                      "restarts_in_window": len(self.restarts),
                      "next_spawn_in": max(0.0, self.next_spawn_at - now)},
            "workers": [{"id": w.id, "pid": w.pid, "state": w.state, "calls": w.calls,
                         "age": now - w.spawned_at,
                         "idle_for": (now - w.last_used) if w.last_used else None,
                         "preload_errors": w.preload_errors}
                        for w in self.workers.values()],
        }
