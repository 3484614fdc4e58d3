"""Between two calls on a warm worker: put back what a call changed, and tell what it left behind.

Runs inside the worker process (``sidecar.worker.main``), in its main thread, only while no user
code runs on that thread. A call may change process-wide state that the next, unrelated call
would inherit. What can be put back is put back: resource limits (before every call), signal
handlers, interval timers and trace hooks (after it). What cannot be put back (threads still
running, child processes still alive, a lowered hard limit) is reported, and the pool recycles
the worker gracefully, so no later call shares a process with that code. Exited children are
reaped after every call.

The worker's own report is honest but in-band: a thread the call left can write to the
worker's pipe too, forge its call's reply before the report and so be handed the next caller's
request. So the pool also looks from outside, at what the kernel says and no thread can forge
(``sidecar.platform.procfs.OutsideView``: thread count and children of the worker, at every
reply, read by the pool).

Owns: the worker's baseline (limits, threads, signal handlers at start), restoring limits,
reaping exited children, the list of what a call left behind (sent as
``sidecar.worker.protocol.left_behind``).
Must not touch: the protocol's bytes (``sidecar.worker.protocol``), /proc parsing
(``sidecar.platform.procfs``), scheduling or recycling
(``sidecar.pool.local`` decides).
"""

from __future__ import annotations

import _signal
import _thread
import os
import signal
import sys
import threading
import time

from sidecar.platform.limits import LIMITS, getrlimit, setrlimit
from sidecar.platform.procfs import ProcFile, live_children

# A thread that has returned but is still tearing down may be counted for a moment.
THREAD_GRACE = 0.02
# What one ``pread`` asks the kernel for (the text is ~1.4 KiB; a child list of a few pids).
LIMITS_READ = 8192
CHILDREN_READ = 4096
# Signals whose handler user code may not change for good: the named ones (SIGKILL/SIGSTOP
# cannot be caught; the unnamed real-time range would double the cost of every call).
SIGNALS = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP)]
ITIMERS = [signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF]
NO_TIMERS = [(0.0, 0.0)] * len(ITIMERS)


class Baseline:
    """What the worker looks like with no call in it: taken once, after start-up and preload."""

    def __init__(self) -> None:
        self.limits: dict[str, tuple[int, int]] = {}
        for name, which in LIMITS.items():
            try:
                self.limits[name] = getrlimit(which)
            except (ValueError, OSError):
                continue
        # The kernel's text of every limit: one pread tells "unchanged" (16 getrlimit calls
        # otherwise, each a system call, on every call).
        self.limits_file = ProcFile("/proc/self/limits")
        self.limits_text = self.limits_file.read()
        self.threads = _thread._count()  # every Python thread, threading's or _thread's own
        self.thread_idents = {t.ident for t in threading.enumerate()}
        # _signal's raw handlers: signal.getsignal wraps each in an enum, 30 times a call
        self.handlers = {int(s): _signal.getsignal(s) for s in SIGNALS}
        self.signal_numbers = list(self.handlers)
        self.handler_list = list(self.handlers.values())
        # One kernel thread (the usual worker): its own task's children file lists every child
        # (an ended thread's children pass to a live one), kept open and re-read (pread).
        self.own_children = ProcFile(f"/proc/self/task/{os.getpid()}/children")
        self.single_task = ProcFile.count_threads("/proc/self/stat") == 1

    def restore_limits(self) -> list[str]:
        """Put every resource limit back to its start value; the names that could not be
        (a lowered hard limit cannot be raised again without privilege)."""
        if self.limits_text is not None and self.limits_file.read() == self.limits_text:
            return []
        failed = []
        for name, value in self.limits.items():
            which = LIMITS[name]
            try:
                if getrlimit(which) != value:
                    setrlimit(which, value)
            except (ValueError, OSError) as exc:
                failed.append(f"{name} ({exc})")
        return failed

    def untouched(self) -> bool:
        """The quick look after a call, changing nothing: True when every limit, thread
        count, child list, interval timer, signal handler and trace hook is the baseline's.
        Five system calls (two ``pread``, three ``getitimer``) and no Python loop: the price
        of every call. When it is False, ``left_behind`` takes the long way (and finds the
        same, or what to put back and report)."""
        return (self.limits_text is not None
                and self.limits_file.read(LIMITS_READ) == self.limits_text
                and _thread._count() <= self.threads
                and self.single_task and self.own_children.read(CHILDREN_READ) == b""
                and list(map(_signal.getitimer, ITIMERS)) == NO_TIMERS
                and list(map(_signal.getsignal, self.signal_numbers)) == self.handler_list
                and sys.gettrace() is None and sys.getprofile() is None)

    def left_behind(self) -> list[str]:
        """Reap exited children, then describe what the call left that cannot be undone."""
        if self.untouched():
            return []
        reasons = []
        failed = self.restore_limits()
        if failed:
            reasons.append("it changed resource limits that cannot be restored: "
                           + ", ".join(failed))
        threads = self.extra_threads()
        if threads:
            reasons.append(f"it left {len(threads)} thread(s) running: {', '.join(threads)}")
        children = self.children()
        if children:  # the list holds exited children too: reap, then look again
            reap_children()
            children = self.children()
        if children:
            reasons.append(f"it left {len(children)} child process(es) running: pids "
                           + ", ".join(map(str, children[:10])))
        reasons.extend(self.restore_signals())
        return reasons

    def children(self) -> list[int]:
        """This process's children (exited ones not reaped yet included)."""
        if self.single_task and _thread._count() <= self.threads:
            listed = self.own_children.read()
            if listed is not None:
                return sorted(int(p) for p in listed.split())
        return live_children()

    def restore_signals(self) -> list[str]:
        """Put back signal handlers, interval timers and trace hooks a call left set (a
        SIGALRM handler armed by one call must not fire in the next); what cannot be put back
        (a handler set from C) is reported."""
        reasons = []
        for t in ITIMERS:
            if signal.getitimer(t) != (0.0, 0.0):
                signal.setitimer(t, 0)
        getsignal = _signal.getsignal
        for s, before in self.handlers.items():
            if getsignal(s) == before:
                continue
            try:
                if before is None:  # installed from C: Python cannot reinstall it
                    raise ValueError("the original handler was not set from Python")
                signal.signal(s, before)
            except (ValueError, OSError, TypeError) as exc:
                reasons.append(f"it changed the handler of {signal.Signals(s).name} ({exc})")
        sys.settrace(None)
        sys.setprofile(None)
        return reasons

    def extra_threads(self) -> list[str]:
        deadline = time.monotonic() + THREAD_GRACE
        while _thread._count() > self.threads and time.monotonic() < deadline:
            time.sleep(0.001)
        if _thread._count() <= self.threads:
            return []
        names = [t.name for t in threading.enumerate() if t.ident not in self.thread_idents]
        unnamed = _thread._count() - self.threads - len(names)
        return names[:10] + ([f"{unnamed} started with _thread"] if unnamed > 0 else [])


def reap_children() -> int:
    """Collect every exited child (no zombies pile up); runs only between calls, so it never
    takes the status of a process the call's code is still waiting for."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


def kill_children() -> None:
    """On the worker's way out: end what user code left, even a child that escaped the
    worker's process group with setsid (as a subreaper, orphans are the worker's children)."""
    for pid in live_children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    reap_children()
