"""A pool's warm template: the process new workers are forked from, in milliseconds.

``python3.worker.spawn: template`` (the default): each pool starts one template process
(``sidecar.process.template_server``) that has done a worker's start-up and preload; a new worker is
asked of it over a unix socket, its pipes handed over with ``SCM_RIGHTS``, and it answers with
the pid of a child forked with ``CLONE_PARENT``, so the worker is the sidecar's own child::

    WorkerProcess(spec)  --spec.template.fork(fds)-->  template: clone -> worker (our child)
         |  TemplateUnavailable (none ready, it failed, declined)       |
         v                                                             pid, then pidfd_open
    subprocess.Popen (a plain spawn, as before)

A template that dies or fails a fork is replaced after a back-off (``python3.recovery``
restart delays); until a new one is ready, workers are spawned plain. A pool whose interpreter
is not the sidecar's spawns plain. ``renew`` (reload on edit, ``Pool.renew_workers``) replaces
the template at once: its preload is stale.

Owns: starting, watching, renewing and stopping the template process, the fork request and
its deadline, the forked child's reaping (``ForkedChild``: ``Popen``'s ``poll``/``wait``).
Must not touch: the worker's descriptors once handed over (``sidecar.process.spawn``), calls, roles
or the pool's restart limit (``sidecar.pool.lifecycle``, ``sidecar.pool.spawn_policy``).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from sidecar.platform.clone import clone_supported
from sidecar.platform.poller import pidfd_open
from sidecar.process.exits import describe_exit
from sidecar.process.template_server import FD_ROLES

if TYPE_CHECKING:
    from sidecar.loop import Loop, Timer
    from sidecar.pool.settings import PoolSettings

log = logging.getLogger("py3sidecar.pool")

TEMPLATE, PLAIN = "template", "plain"
FORK_TIMEOUT = 1.0  # a fork answers in milliseconds; past this the template is replaced


class TemplateUnavailable(Exception):
    """No template can fork now: spawn plain."""


def template_unsupported(settings: PoolSettings) -> str:
    """Why this pool spawns plain ("" when a template can serve it)."""
    if settings.spawn != TEMPLATE:
        return f"python3.worker.spawn is {settings.spawn!r}"
    ours = os.path.realpath(sys.executable)
    if len(settings.python) != 1 or os.path.realpath(settings.python[0]) != ours:
        return (f"the pool's interpreter ({' '.join(settings.python)}) is not the sidecar's "
                f"({sys.executable})")
    return clone_supported()


class ForkedChild:
    """A worker forked by the template: our child, reaped like a ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost (as Popen does)
                self.returncode = 0
                return 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            try:
                pidfd = pidfd_open(self.pid)
            except OSError:
                continue  # it is gone: the next poll reaps it
            try:
                select.select([pidfd], [], [], left)
            finally:
                os.close(pidfd)
        assert self.returncode is not None
        return self.returncode


class TemplateProcess:
    """One generation of the template process (a renewal or a respawn starts another)."""

    def __init__(self, owner: WorkerTemplate, spec: Any) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.ready = False
        self.declined = ""
        self.started_at = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [*spec.python, "-m", "sidecar.process.template_server", "--sock",
                 str(theirs.fileno()),
                 "--settings", spec.settings_json],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=spec.env,
                start_new_session=True, **spec.credentials)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.pid = self.proc.pid
        self.pidfd = pidfd_open(self.pid)
        self.loop.add_reader(self.sock.fileno(), self.on_readable)
        self.loop.add_reader(self.pidfd, self.on_exit)
        self.start_timer: Timer | None = self.loop.call_later(
            owner.settings.start_timeout, lambda: self.fail("it did not get ready within "
                                                            "python3.worker.start-timeout"))

    def on_readable(self) -> None:
        try:
            message = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(f"its socket failed ({exc})")
            return
        if not message:
            self.fail("it closed its socket")
            return
        answer = json.loads(message)
        if answer.get("op") != "ready" or self.ready:
            self.fail(f"it sent {answer!r} unasked")
            return
        if self.start_timer is not None:
            self.start_timer.cancel()
        self.declined = answer.get("declined") or ""
        if self.declined:
            self.owner.declined(self, self.declined)
            return
        self.ready = True
        self.owner.template_ready(self, time.monotonic() - self.started_at)

    def fork(self, fds: dict[str, int]) -> ForkedChild:
        """Ask for a worker holding ``fds``; raises ``TemplateUnavailable`` if it cannot."""
        roles = [role for role in FD_ROLES if fds.get(role, -1) >= 0]
        try:
            socket.send_fds(self.sock, [json.dumps({"op": "fork", "fds": roles}).encode()],
                            [fds[role] for role in roles])
            readable, _, _ = select.select([self.sock], [], [], FORK_TIMEOUT)
            message = self.sock.recv(4096) if readable else b""
        except OSError as exc:
            self.fail(f"a fork request failed ({exc})")
            raise TemplateUnavailable(str(exc)) from exc
        answer = json.loads(message) if message else {"error": f"no answer within "
                                                               f"{FORK_TIMEOUT:g}s"}
        if "pid" not in answer:
            self.fail(f"it could not fork a worker: {answer.get('error')}")
            raise TemplateUnavailable(str(answer.get("error")))
        return ForkedChild(int(answer["pid"]))

    def fail(self, reason: str, quiet: bool = False) -> None:
        """Out of service now (killed); ``on_exit`` reaps it and the owner starts another."""
        if not quiet:
            log.warning("the worker template (pid %d) is being replaced: %s; workers are "
                        "started plain meanwhile", self.pid, reason)
        self.ready = False
        self.stop_waiting()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()

    def stop_waiting(self) -> None:
        if self.start_timer is not None:
            self.start_timer.cancel()
            self.start_timer = None
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def on_exit(self) -> None:
        if self.proc.poll() is None:
            return  # spurious wake-up
        self.ready = False
        self.stop_waiting()
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.owner.template_exited(self, describe_exit(self.proc.returncode)[0])


class WorkerTemplate:
    """The template of one pool: at most one live ``TemplateProcess``, respawned with a
    back-off when it dies, replaced at once by ``renew``."""

    def __init__(self, loop: Loop, settings: PoolSettings, spec: Any) -> None:
        self.loop = loop
        self.settings = settings
        self.spec = spec
        self.current: TemplateProcess | None = None
        self.retired: list[TemplateProcess] = []  # killed, not reaped yet
        self.retry_timer: Timer | None = None
        self.delay = settings.backoff_initial
        self.closed = False
        self.declined_reason = ""
        self.counters = {"started": 0, "forks": 0, "plain_spawns": 0, "failures": 0}

    # ------------------------------------------------------------ the sidecar's side
    def start(self) -> None:
        if self.closed or self.current is not None or self.declined_reason:
            return
        self.retry_timer = None
        try:
            self.current = TemplateProcess(self, self.spec)
        except OSError as exc:
            log.error("could not start the worker template: %s; workers are started plain",
                      exc)
            self.schedule_start()
            return
        self.counters["started"] += 1

    def fork(self, fds: dict[str, int]) -> ForkedChild | None:
        """A worker forked from the ready template, or None: spawn it plain."""
        current = self.current
        try:
            if current is None or not current.ready:
                raise TemplateUnavailable("no template is ready")
            child = current.fork(fds)
        except TemplateUnavailable:
            self.counters["plain_spawns"] += 1
            return None
        self.counters["forks"] += 1
        return child

    def renew(self, reason: str) -> None:
        """The preload is stale (code changed): a new template, now."""
        self.declined_reason = ""
        self.retire(reason)
        self.delay = self.settings.backoff_initial
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
        self.start()

    def close(self, deadline: float) -> None:
        """At shutdown: kill it and reap it (bounded)."""
        self.closed = True
        if self.retry_timer is not None:
            self.retry_timer.cancel()
        self.retire("the sidecar is stopping")
        for process in self.retired:
            try:
                process.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("the worker template (pid %d) did not exit", process.pid)
            process.stop_waiting()
            self.loop.remove_reader(process.pidfd)
            os.close(process.pidfd)
        self.retired.clear()

    def retire(self, reason: str) -> None:
        if self.current is not None:
            old, self.current = self.current, None
            log.info("the worker template (pid %d) is replaced: %s", old.pid, reason)
            old.fail(reason, quiet=True)
            self.retired.append(old)

    def snapshot(self) -> dict[str, Any]:
        current = self.current
        state = ("declined" if self.declined_reason else "down" if current is None
                 else "ready" if current.ready else "starting")
        return {"state": state, "pid": current.pid if current else None,
                "reason": self.declined_reason, **self.counters}

    # ------------------------------------------------------------ from a TemplateProcess
    def template_ready(self, process: TemplateProcess, seconds: float) -> None:
        self.delay = self.settings.backoff_initial
        log.info("worker template (pid %d) ready in %.0f ms: workers are forked from it",
                 process.pid, seconds * 1000)

    def declined(self, process: TemplateProcess, reason: str) -> None:
        log.warning("the worker template is not used: %s (python3.worker.preload; set "
                    "python3.worker.spawn: plain to skip it)", reason)
        self.declined_reason = reason
        self.retire(reason)

    def template_exited(self, process: TemplateProcess, text: str) -> None:
        if process in self.retired:
            self.retired.remove(process)
            return
        if process is self.current:
            self.current = None
            self.counters["failures"] += 1
            log.warning("the worker template (pid %d) exited with %s; workers are started "
                        "plain until a new one is ready (in %.2fs)", process.pid, text,
                        self.delay)
            self.schedule_start()

    def schedule_start(self) -> None:
        if self.closed or self.retry_timer is not None:
            return
        self.retry_timer = self.loop.call_later(self.delay, self.start)
        self.delay = min(self.delay * 2, self.settings.backoff_max)
