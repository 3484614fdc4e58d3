"""The sidecar's single event loop: one thread owns the pool, the ZeroMQ front and the timers.

Owns: waiting on ZeroMQ sockets and plain file descriptors at once (``zmq.Poller``; readers,
and writers for fds whose output had to be buffered), timers,
and hand-offs from other threads (``call_soon_threadsafe``). Must not touch: what the events
mean. One thread means no locks on the hot path: a request read from the ROUTER socket is
written to a worker's pipe in the same loop turn.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

log = logging.getLogger("py3sidecar.loop")

# An error or hang-up wakes both sides: each finds out what happened from its own read/write.
# Plain ints: pyzmq's flags are enum.IntFlag, and ``int & IntFlag`` runs Python-level enum code
# on every event of every loop turn.
_READ_EVENTS = int(zmq.POLLIN | zmq.POLLERR)
_WRITE_EVENTS = int(zmq.POLLOUT | zmq.POLLERR)


class Timer:
    __slots__ = ("when", "callback", "cancelled", "loop")

    def __init__(self, loop: "Loop", when: float, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.loop._timer_cancelled()


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.poller = zmq.Poller()
        self.handlers: dict[Any, Callable[[], None]] = {}
        self.writers: dict[Any, Callable[[], None]] = {}
        self.timers: list[tuple[float, int, Timer]] = []
        self.seq = itertools.count()
        self.pending: deque[Callable[[], None]] = deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.add_reader(self.wake_r, self._drain_wake)
        self.stopping = False
        self.cancelled_timers = 0
        self.thread_id: int | None = None

    # ------------------------------------------------------------ registration
    def add_reader(self, source: Any, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``source`` (zmq socket or fd) is readable."""
        self.handlers[source] = callback
        self._register(source)

    def remove_reader(self, source: Any) -> None:
        if self.handlers.pop(source, None) is not None:
            self._register(source)

    def add_writer(self, source: Any, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``source`` (an fd) is writable (until ``remove_writer``)."""
        self.writers[source] = callback
        self._register(source)

    def remove_writer(self, source: Any) -> None:
        if self.writers.pop(source, None) is not None:
            self._register(source)

    def _register(self, source: Any) -> None:
        flags = ((zmq.POLLIN if source in self.handlers else 0)
                 | (zmq.POLLOUT if source in self.writers else 0))
        if flags:
            self.poller.register(source, flags)  # (re-)registering replaces the flags
        elif source in self.poller:
            self.poller.unregister(source)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self, when, callback)
        heapq.heappush(self.timers, (when, next(self.seq), timer))
        return timer

    def _timer_cancelled(self) -> None:
        # Every call arms a deadline timer that is nearly always cancelled: purge them in bulk
        # so the heap stays the size of the live timers, not of the last minute's calls.
        self.cancelled_timers += 1
        if self.cancelled_timers > 1024 and self.cancelled_timers * 2 > len(self.timers):
            self.timers[:] = [entry for entry in self.timers if not entry[2].cancelled]
            heapq.heapify(self.timers)
            self.cancelled_timers = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock() + delay, callback)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self.pending.append(callback)
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: the loop will wake
        except OSError:
            pass  # closed during shutdown

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # ------------------------------------------------------------ running
    def stop(self) -> None:
        self.stopping = True
        self.call_soon_threadsafe(lambda: None)

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Run until ``stop()`` (or until ``until()`` turns true).

        A ``stop()`` that came before ``run()`` (SIGTERM during start-up) is not lost: the flag is
        consumed when ``run`` returns, so a later ``run`` (the drain) starts afresh.
        """
        import threading

        self.thread_id = threading.get_ident()
        poll = self.poller.poll
        handlers = self.handlers
        writers = self.writers
        pending = self.pending
        timers = self.timers
        clock = self.clock
        while not self.stopping and not (until is not None and until()):
            timeout: float | None = None
            if pending:
                timeout = 0
            elif timers:
                timeout = max(0.0, (timers[0][0] - clock()) * 1000.0)
                timeout = int(timeout) + (1 if timeout % 1 else 0)
            if until is not None and (timeout is None or timeout > 50):
                timeout = 50  # re-check the condition at least this often (ms)
            for source, events in poll(timeout):
                if events & _READ_EVENTS:
                    handler = handlers.get(source)
                    if handler is not None:
                        self._safely(handler)
                if events & _WRITE_EVENTS:
                    handler = writers.get(source)
                    if handler is not None:
                        self._safely(handler)
            while pending:
                self._safely(pending.popleft())
            if timers:
                now = clock()
                while timers and timers[0][0] <= now:
                    _, _, timer = heapq.heappop(timers)
                    if timer.cancelled:
                        self.cancelled_timers -= 1
                    else:
                        timer.cancelled = True
                        self._safely(timer.callback)
        self.stopping = False  # consumed: see the docstring

    @staticmethod
    def _safely(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a bug in one handler must not stop the sidecar
            log.exception("internal error in event handler %r", callback)

    def close(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
