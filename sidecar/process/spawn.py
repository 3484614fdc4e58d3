"""One worker process (``python -m sidecar.worker.main``) and the descriptors that lead to it.

Used by the pool (``sidecar.pool.local``) and by direct execution
(``sidecar.routing.strategies.DirectRun``).

Owns: spawning a worker (forked from the pool's template, ``sidecar.process.template``, or started
plain; its request and reply pipes, the pidfd, the fd 1/2 pipe, the account it
runs as, the stack file it dumps into), buffered non-blocking writes, signals to its process
group, reaping (descriptors closed, stack file removed, what its calls left in the group
killed), stack capture (faulthandler on SIGUSR1) and never-read detection (FIONREAD on our copy
of its in-pipe). Must not touch: calls, queues, roles or health (the pool decides what a
process is for), framing rules (``sidecar.channel``), value encoding (``bridge.codec``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.channel import FrameReader, OutBuffer
from sidecar.platform.pipes import pending_bytes, widen_pipe
from sidecar.platform.poller import pidfd_open
from sidecar.process.confinement import ENV_SIDECAR_PID, worker_credentials
from sidecar.process.exits import describe_exit

if TYPE_CHECKING:
    from sidecar.loop import Loop
    from sidecar.pool.settings import PoolSettings
    from sidecar.process.fd_output import FdOutput
    from sidecar.process.template import ForkedChild, WorkerTemplate

log = logging.getLogger("py3sidecar.pool")

PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def worker_settings_json(settings: PoolSettings) -> str:
    """The ``--settings`` a worker process starts with (``sidecar.worker.main``)."""
    return json.dumps({
        "paths": settings.paths, "preload": settings.preload,
        "max_output_chars": settings.max_output_chars,
        "max_message_bytes": settings.max_message_bytes,
        "cpu_limit": settings.cpu_limit,
        "address_space_limit": settings.address_space_limit,
        "cpu_affinity": settings.cpu_affinity})


# Numeric libraries' own thread pools, one thread each unless the sidecar's environment or
# python3.worker.env says otherwise, as Dask's nanny does for its workers: several worker
# processes already use the cores, and a pool started by `import numpy` inside a call would be
# threads the call left behind, so the worker would be recycled after every such call.
LIBRARY_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_env(settings: PoolSettings) -> dict[str, str]:
    """A worker's environment: ours, the configured extras, and this project importable."""
    env = dict(os.environ)
    for name in LIBRARY_THREADS:
        env.setdefault(name, "1")
    env.update(settings.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH", "")) if p)
    # the worker checks its parent (sidecar.process.confinement)
    env[ENV_SIDECAR_PID] = str(os.getpid())
    env.pop("PY3SIDECAR_TOKEN", None)  # user code has no business with the sidecar's token
    return env


@dataclass(frozen=True)
class WorkerSpec:
    """How to start a worker: command, settings, environment, account. Built once per pool."""

    python: tuple[str, ...]
    settings_json: str
    env: dict[str, str]
    credentials: dict[str, Any]
    max_message: int
    # python3.worker.spawn: template (sidecar.process.template); None: every worker is spawned plain
    template: WorkerTemplate | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: PoolSettings) -> WorkerSpec:
        return cls(tuple(settings.python), worker_settings_json(settings), worker_env(settings),
                   worker_credentials(settings.user, settings.group),  # python3.worker.user
                   settings.max_message_bytes)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class WorkerProcess:
    """A started worker process; raises ``OSError`` (nothing left open) if it cannot start.

    ``fd_output`` given: its fd 1/2 go to a pipe read into the log (``sidecar.process.fd_output``);
    otherwise it shares ours. ``stack_file`` given: it dumps its threads' stacks there."""

    def __init__(self, loop: Loop, spec: WorkerSpec, *, stack_file: str = "",
                 fd_output: FdOutput | None = None, label: str = "worker") -> None:
        self.loop = loop
        self.label = label
        self.stack_file = stack_file
        self.fd_output = fd_output
        self.exit: dict[str, Any] | None = None
        self.on_write_error: Callable[[OSError], None] = lambda exc: None
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        out_r, out_w = fd_output.open_pipe() if fd_output is not None else (-1, -1)
        stack_fd = -1
        try:
            # Opened here and inherited: a worker running as another account
            # (python3.worker.user) cannot open files in our owner-only folder.
            if stack_file:
                stack_fd = os.open(stack_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                   | os.O_CLOEXEC, 0o600)
            self.proc = self.start(spec, to_r, from_w, out_w, stack_fd)
        except OSError:
            _close(to_r, to_w, from_r, from_w, out_r, out_w, stack_fd)
            raise
        # We keep a copy of the worker's read end: if it dies, FIONREAD on it tells whether
        # the request we wrote was ever read. Unread means never started: dispatched again.
        _close(from_w, out_w, stack_fd)
        os.set_blocking(from_r, False)
        os.set_blocking(to_w, False)
        widen_pipe(to_w)
        widen_pipe(from_r)
        self.pid = self.proc.pid
        self.spawned = "plain" if isinstance(self.proc, subprocess.Popen) else "template"
        self.pidfd = pidfd_open(self.pid)
        self.to_worker = to_w
        self.unsent = OutBuffer(to_w)  # what its in-pipe has not taken yet
        self.unread_probe = to_r
        self.output_fd = out_r
        self.reader = FrameReader(from_r, spec.max_message)

    @staticmethod
    def start(spec: WorkerSpec, to_r: int, from_w: int, out_w: int,
              stack_fd: int) -> subprocess.Popen[bytes] | ForkedChild:
        """Forked from the pool's warm template when one is ready (milliseconds), else a plain
        ``python -m sidecar.worker.main``. Either way: its own process group, our child, fd 1/2 on
        ``out_w`` (or ours), the pipes moved to fds >= 200 by the worker itself."""
        if spec.template is not None:
            child = spec.template.fork({"in": to_r, "out": from_w, "output": out_w,
                                        "stack": stack_fd})
            if child is not None:
                return child
        argv = [*spec.python, "-m", "sidecar.worker.main", "--in", str(to_r), "--out",
                str(from_w), "--settings", spec.settings_json]
        if stack_fd >= 0:
            argv += ["--stack-fd", str(stack_fd)]
        output = {"stdout": out_w, "stderr": out_w} if out_w >= 0 else {}
        return subprocess.Popen(
            argv, pass_fds=tuple(fd for fd in (to_r, from_w, stack_fd) if fd >= 0),
            stdin=subprocess.DEVNULL, env=spec.env, start_new_session=True,
            **output, **spec.credentials)

    def watch(self, on_output: Callable[[], Any], on_exit: Callable[[], Any]) -> None:
        """Call ``on_output`` when it wrote to us, ``on_exit`` when its pidfd fires."""
        if self.output_fd >= 0:
            self.loop.add_reader(self.output_fd, self.read_output)
        self.loop.add_reader(self.reader.fd, on_output)
        self.loop.add_reader(self.pidfd, on_exit)

    # ------------------------------------------------------------ writing
    def write(self, payload: bytes) -> None:
        """Send a frame without ever blocking the loop: what the pipe does not take now is
        sent when it drains, a bounded amount per loop turn (a worker that never reads is
        caught by its call's deadline). Raises ``OSError`` if the pipe failed now; a later
        failure goes to ``on_write_error``. The payload is not copied: it must not change."""
        unsent = self.unsent
        if unsent.pending:  # a writer is registered: it goes out after what waits
            unsent.add_frame(payload)
            return
        try:
            done = unsent.send(payload)  # one writev in the common case
        except OSError:
            unsent.clear()
            raise
        if not done:
            self.loop.add_writer(self.to_worker, self.flush)

    def flush(self) -> None:
        try:
            done = self.unsent.flush()
        except OSError as exc:
            self.loop.remove_writer(self.to_worker)
            self.unsent.clear()
            self.on_write_error(exc)
            return
        if done:
            self.loop.remove_writer(self.to_worker)

    def close_input(self) -> None:
        """EOF on its in-pipe: an idle worker exits on its own."""
        if self.to_worker >= 0:
            self.loop.remove_writer(self.to_worker)
            self.unsent.clear()
            _close(self.to_worker)
            self.to_worker = -1

    def never_read(self, size: int) -> bool:
        """True when at least ``size`` bytes we wrote still sit unread in its in-pipe."""
        try:
            pending = pending_bytes(self.unread_probe)
        except OSError:
            return False
        return pending >= size

    # ------------------------------------------------------------ signals and the end
    def signal(self, signum: int) -> None:
        if self.exit is not None:
            return
        try:
            os.killpg(self.pid, signum)  # the worker leads its own group: its children too
        except ProcessLookupError:
            pass
        except PermissionError:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL whatever is left in its process group (what the user's code started)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def poll_exit(self) -> dict[str, Any] | None:
        """Its end (``returncode``, ``text`` and wire details) once it exited, else None
        (a pidfd is readable only once the process has exited, but wake-ups can be spurious)."""
        if self.exit is not None:
            return self.exit
        returncode = self.proc.poll()
        if returncode is None:
            return None
        self.loop.remove_reader(self.pidfd)
        text, details = describe_exit(returncode)
        self.exit = {"returncode": returncode, "text": text, **details}
        return self.exit

    def wait(self, deadline: float) -> None:
        """Block (bounded, at shutdown only) until it exits; SIGKILL at ``deadline``."""
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                log.error("%s did not exit even after SIGKILL", self.label)

    def reap(self) -> None:
        """After its exit (or at shutdown): every descriptor closed, its last fd 1/2 output
        read, its stack file removed, its process group killed. Safe to call twice."""
        for fd in (self.reader.fd, self.pidfd, self.unread_probe):
            self.loop.remove_reader(fd)
        _close(self.reader.fd, self.pidfd, self.unread_probe)
        self.reader.fd = self.pidfd = self.unread_probe = -1
        self.read_output()  # its last words (a fatal error's report), then closed
        self.close_output()
        self.close_input()
        if self.stack_file:
            try:
                os.unlink(self.stack_file)
            except OSError:
                pass
        self.kill_group()

    # ------------------------------------------------------------ fd 1/2 and stacks
    def read_output(self) -> None:
        if self.output_fd >= 0 and self.fd_output is not None and not self.fd_output.on_readable(
                self.output_fd, self.label):
            self.close_output()

    def close_output(self) -> None:
        if self.output_fd >= 0:
            self.loop.remove_reader(self.output_fd)
            _close(self.output_fd)
            self.output_fd = -1

    def capture_stack(self, wait: float, then: Callable[[str], None],
                      log_stack: bool = True) -> None:
        """Ask for every thread's stack (faulthandler on SIGUSR1), then ``then(text)``.

        The dump is written by a C signal handler, so it arrives even from a worker stuck in
        C; we wait at most ``wait`` seconds and never block the loop."""
        if self.exit is not None or not self.stack_file:
            then("")
            return
        try:
            offset = os.path.getsize(self.stack_file)
            os.kill(self.pid, signal.SIGUSR1)
        except OSError:
            then("")
            return
        deadline = self.loop.clock() + wait
        last = [offset]

        def poll() -> None:
            try:
                size = os.path.getsize(self.stack_file)
            except OSError:
                size = offset
            if size > offset and size == last[0] or self.loop.clock() >= deadline:
                text = self.read_stack(offset)
                if text and log_stack:  # False: asked for by diagnostics, nobody stops
                    log.warning("stack of %s before it is stopped:\n%s", self.label,
                                text.rstrip())
                then(text)
                return
            last[0] = size
            self.loop.call_later(0.005, poll)

        self.loop.call_later(0.005, poll)

    def read_stack(self, offset: int) -> str:
        try:
            with open(self.stack_file, errors="replace") as handle:
                handle.seek(offset)
                return handle.read()
        except OSError:
            return ""
