"""Test doubles for the pool's state-machine tests: a fake clock and a fake worker process.

The pool, its lifecycle, the watchdog and recovery are the real classes, on a real ``Loop``
driven by a fake clock; only the worker process (``sidecar.process.spawn.WorkerProcess``: a child,
its pipes, its pidfd) is replaced, by ``FakeProcess``, which the test makes speak (``send``) and
die (``die``). Nothing here sleeps or spawns.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from typing import Any

from bridge.codec import pack_raw
from sidecar.loop import Loop
from sidecar.pool.call import Call
from sidecar.pool.events import POOL_EVENTS
from sidecar.pool.local import STARTING, Pool, PoolSettings, WorkerHandle
from sidecar.process.exits import describe_exit

from .clock_double import FakeClock

READY = pack_raw({"op": "ready"})
# No pid of a live process (above the kernel's pid_max): psutil and /proc find nothing there.
_PIDS = itertools.count(900_000_000)



class FakeReader:
    """Test double for ``sidecar.channel.FrameReader``: frames the test queued."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.frames: list[bytes] = []
        self.eof = False

    def feed(self) -> list[bytes] | None:
        frames, self.frames = self.frames, []
        return frames or None


class FakeProcess:
    """Test double for ``WorkerProcess``: records what the pool did to it."""

    instances: list[FakeProcess]

    def __init__(self, loop: Loop, spec: Any, *, stack_file: str = "", fd_output: Any = None,
                 label: str = "") -> None:
        self.loop = loop
        self.pid = next(_PIDS)
        self.label = label
        self.spawned = "plain"
        self.reader = FakeReader(-self.pid)
        self.written: list[bytes] = []
        self.signals: list[int] = []
        self.input_closed = False
        self.exit: dict[str, Any] | None = None
        self.unread = False         # never_read(): it died before reading its request
        self.write_error: OSError | None = None
        self.stack = "Current thread 0x1 (most recent call first):\n  File \"x.py\", line 1 in run"
        self.on_write_error: Callable[[OSError], None] | None = None
        self.on_output: Callable[[], None] = lambda: None
        self.on_exit: Callable[[], None] = lambda: None
        self.reaped = False
        self.defer_stack = False
        self.stack_waiters: list[Callable[[str], None]] = []

    # ---- what the pool calls
    def watch(self, on_output: Callable[[], None], on_exit: Callable[[], None]) -> None:
        self.on_output, self.on_exit = on_output, on_exit

    def write(self, data: bytes) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.written.append(data)

    def signal(self, signum: int) -> None:
        self.signals.append(signum)

    def close_input(self) -> None:
        self.input_closed = True

    def poll_exit(self) -> dict[str, Any] | None:
        return self.exit

    def never_read(self, size: int) -> bool:
        return self.unread

    def capture_stack(self, wait: float, then: Callable[[str], None],
                      log_stack: bool = True) -> None:
        if self.defer_stack:  # the dump arrives later: the test calls ``stack_arrives``
            self.stack_waiters.append(then)
        else:
            then(self.stack)

    def stack_arrives(self) -> None:
        waiters, self.stack_waiters = self.stack_waiters, []
        for then in waiters:
            then(self.stack)

    def reap(self) -> None:
        self.reaped = True

    def wait(self, deadline: float) -> None:
        pass

    # ---- what the test makes it do
    def send(self, frame: bytes) -> None:
        """The worker writes a frame; the loop finds its pipe readable."""
        self.reader.frames.append(frame)
        self.on_output()

    def die(self, returncode: int) -> None:
        """The process ends; its pidfd becomes readable."""
        text, details = describe_exit(returncode)
        self.exit = {"returncode": returncode, "text": text, **details}
        self.reader.eof = True
        self.on_exit()


class PoolHarness:
    """A real ``Pool`` on a real ``Loop`` with a fake clock, spawning ``FakeProcess``es."""

    def __init__(self, tmp_path: Any, **settings: Any) -> None:
        self.clock = FakeClock()
        self.loop = Loop(clock=self.clock)
        self.processes: list[FakeProcess] = []
        self.events: list[object] = []
        self.spawn_error: OSError | None = None  # set: the next starts fail with it

        def factory(*args: Any, **kwargs: Any) -> FakeProcess:
            if self.spawn_error is not None:
                raise self.spawn_error
            process = FakeProcess(*args, **kwargs)
            self.processes.append(process)
            return process

        settings.setdefault("initial_size", 1)
        settings.setdefault("spares", 0)
        self.pool = Pool(self.loop, PoolSettings(stack_root=str(tmp_path), **settings),
                         process_factory=factory)
        self.pool.listen(self.events.append)

    def advance(self, seconds: float) -> None:
        """Move the clock and run one loop turn: the timers now due fire, in order."""
        self.clock.now += seconds
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop.run()

    def ready_all(self) -> None:
        for process in list(self.processes):
            worker = self.worker(process)
            if worker is not None and worker.state == STARTING:
                process.send(READY)

    def worker(self, process: FakeProcess) -> WorkerHandle | None:
        return next((w for w in self.pool.workers.values() if w.process is process), None)

    def live(self) -> list[FakeProcess]:
        return [p for p in self.processes if p.exit is None]

    def events_of(self, kind: type) -> list[Any]:
        assert kind in POOL_EVENTS
        return [e for e in self.events if type(e) is kind]

    def end_killed(self) -> None:
        """Every process the pool signalled exits (as a real one would on SIGTERM)."""
        for process in list(self.processes):
            if process.exit is None and process.signals:
                process.die(-signal.SIGTERM)

    def close(self) -> None:
        self.pool.terminate(0.0)
        self.loop.close()


def reply_ok(value: Any = 1) -> bytes:
    return pack_raw({"ok": True, "value": value, "ms": 1.0, "cpu": 0.5, "stdout": "",
                     "stderr": ""})


class Sink:
    """Where a ``Call``'s answers go; a call must be answered exactly once."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.replies.append(data)


def worker_of(h: PoolHarness, call: Any) -> Any:
    """The worker running ``call`` (a worker owns its call), or None."""
    return next((w for w in h.pool.workers.values() if w.call is call), None)


def started(make: Callable[..., PoolHarness], **settings: Any) -> PoolHarness:
    """A pool from the ``make`` fixture, started, every worker ready."""
    h = make(**settings)
    h.pool.start()
    h.ready_all()
    return h


def submit(h: PoolHarness, rid: str = "r1", timeout: float = 5.0) -> tuple[Call, Sink]:
    """A call ``rid`` submitted to the harness's pool, and the sink its reply goes to."""
    sink = Sink()
    call = Call(rid, b"payload-" + rid.encode(), timeout, sink, h.clock())
    h.pool.submit(call)
    return call, sink
