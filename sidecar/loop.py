"""The sidecar's single event loop: one thread owns the pool, the ZeroMQ front and the timers.

Owns: waiting on ZeroMQ sockets and plain file descriptors at once (one ``epoll``; readers,
and writers for fds whose output had to be buffered), timers,
and hand-offs from other threads (``call_soon_threadsafe``). Must not touch: what the events
mean. One thread means no locks on the hot path: a request read from the ROUTER socket is
written to a worker's pipe in the same loop turn.

A ZeroMQ socket is waited on through its ``ZMQ_FD`` (readable when libzmq has news for it),
and its ``ZMQ_EVENTS`` are read after every wake-up: the news may have come in while another
handler sent on it, and a handler that stopped early (a batch) leaves messages behind that no
descriptor announces again. One ``epoll_wait`` per turn instead of ``zmq_poll``'s two
``poll`` calls over every registered item (docs/performance.md, "The sidecar hop").
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from sidecar.platform import poller

log = logging.getLogger("py3sidecar.loop")

# An error or hang-up wakes both sides: each finds out what happened from its own read/write.
_READ_EVENTS, _WRITE_EVENTS = poller.READ_EVENTS, poller.WRITE_EVENTS
_ZMQ_POLLIN, _ZMQ_EVENTS = int(zmq.POLLIN), int(zmq.EVENTS)
_zmq_get = zmq.backend.Socket.get  # the backend's getsockopt: an int, no enum built


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
        self.epoll = poller.epoll()
        self.handlers: dict[Any, Callable[[], None]] = {}
        self.writers: dict[Any, Callable[[], None]] = {}
        self.sockets: dict[zmq.Socket, Callable[[], None]] = {}  # ZeroMQ readers
        self.tells_sends: set[zmq.Socket] = set()  # see add_reader
        self.quiet: set[zmq.Socket] = set()  # of those: nothing waits, nothing sent since
        self.sources: dict[int, Any] = {}  # registered descriptor -> its source
        self.masks: dict[int, int] = {}
        self.timers: list[tuple[float, int, Timer]] = []
        self.seq = itertools.count()
        self.pending: deque[Callable[[], None]] = deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.add_reader(self.wake_r, self._drain_wake)
        self.stopping = False
        self.cancelled_timers = 0
        self.thread_id: int | None = None

    # ------------------------------------------------------------ registration
    def add_reader(self, source: Any, callback: Callable[[], None], *,
                   tells_sends: bool = False) -> None:
        """Call ``callback`` whenever ``source`` (zmq socket or fd) is readable.

        ``tells_sends`` (ZeroMQ sockets): its owner calls ``sent_on(source)`` after every send
        on it, so the loop reads its ``ZMQ_EVENTS`` only when its descriptor fired, something
        was sent, or a handler left messages: a turn that served another front (a worker's
        reply, a Py4J or Unix-socket call) pays no ``getsockopt`` (and libzmq's ``poll``)."""
        self.handlers[source] = callback
        if isinstance(source, zmq.Socket):
            self.sockets[source] = callback
            if tells_sends:
                self.tells_sends.add(source)
        self._register(source)

    def sent_on(self, sock: zmq.Socket) -> None:
        """Something was sent on ``sock``: a send may have taken in the news of a message
        (then its descriptor does not fire), so its events are read at the next turn."""
        self.quiet.discard(sock)

    def remove_reader(self, source: Any) -> None:
        if self.handlers.pop(source, None) is not None:
            self.sockets.pop(source, None)
            self.tells_sends.discard(source)
            self.quiet.discard(source)
            self._register(source)

    def add_writer(self, source: Any, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``source`` (an fd) is writable (until ``remove_writer``)."""
        self.writers[source] = callback
        self._register(source)

    def remove_writer(self, source: Any) -> None:
        if self.writers.pop(source, None) is not None:
            self._register(source)

    def _register(self, source: Any) -> None:
        if isinstance(source, zmq.Socket):
            if source.closed:  # its descriptor went with it (and out of the epoll set)
                for fd in [fd for fd, known in self.sources.items() if known is source]:
                    self.sources.pop(fd)
                    self.masks.pop(fd, None)
                return
            fd = source.getsockopt(zmq.FD)  # readable: libzmq has news (see the docstring)
            mask = poller.EPOLLIN if source in self.handlers else 0
        else:
            fd = source
            mask = ((poller.EPOLLIN if source in self.handlers else 0)
                    | (poller.EPOLLOUT if source in self.writers else 0))
        try:
            if not mask:
                if self.masks.pop(fd, None) is not None:
                    self.sources.pop(fd, None)
                    self.epoll.unregister(fd)
            elif fd in self.masks:
                self.epoll.modify(fd, mask)
            else:
                self.epoll.register(fd, mask)
        except OSError as exc:
            if exc.errno == errno.ENOENT and mask:  # closed and reused since: a new one
                self.epoll.register(fd, mask)
            elif exc.errno not in (errno.EBADF, errno.ENOENT):
                raise
        if mask:
            self.masks[fd] = mask
            self.sources[fd] = source

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
        poll = self.epoll.poll
        handlers = self.handlers
        writers = self.writers
        pending = self.pending
        timers = self.timers
        clock = self.clock
        sockets = self.sockets
        sources = self.sources
        quiet = self.quiet
        while not self.stopping and not (until is not None and until()):
            # First, before any wait: whatever ran last turn may have sent on a socket, and a
            # send can take in the news that a message arrived (then no descriptor tells).
            # (quiet is a subset of sockets: when all are quiet there is nothing to look at)
            zmq_ready = len(sockets) > len(quiet) and self._serve_sockets()
            timeout = -1.0
            if pending or zmq_ready:
                timeout = 0.0
            elif timers:
                timeout = max(0.0, timers[0][0] - clock())
            if until is not None and (timeout < 0 or timeout > 0.05):
                timeout = 0.05  # re-check the condition at least this often
            for fd, events in poll(timeout):
                source = sources.get(fd)
                if source is None:
                    continue
                if source in sockets:  # its events are read at the top of the next turn
                    self.quiet.discard(source)
                    continue
                if events & _READ_EVENTS:
                    handler = handlers.get(source)
                    if handler is not None:
                        try:  # _safely, inline: every call's two turns come through here
                            handler()
                        except Exception:  # a bug in one handler must not stop the sidecar
                            log.exception("internal error in event handler %r", handler)
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

    def _serve_sockets(self) -> bool:
        """Run the handler of every ZeroMQ socket with a message waiting; True when one still
        has some afterwards (a handler reads a bounded batch): the next wait must not block.
        A handler that returns a bool has read ``ZMQ_EVENTS`` itself after its last message
        (True: more wait); for one that returns None the events are read again here.
        (pyzmq's backend getsockopt: an int, no enum built per turn.)"""
        again = False
        quiet, tells_sends = self.quiet, self.tells_sends
        for sock, handler in list(self.sockets.items()):
            if sock in quiet:
                continue
            if sock.closed or not _zmq_get(sock, _ZMQ_EVENTS) & _ZMQ_POLLIN:
                if sock in tells_sends:
                    quiet.add(sock)
                continue
            more = self._safely(handler)
            if more is None:
                more = (sock in self.sockets and not sock.closed
                        and _zmq_get(sock, _ZMQ_EVENTS) & _ZMQ_POLLIN)
            if more:
                again = True
            elif sock in tells_sends and sock in self.sockets:
                quiet.add(sock)
        return again

    @staticmethod
    def _safely(callback: Callable[[], Any]) -> Any:
        try:
            return callback()
        except Exception:  # a bug in one handler must not stop the sidecar
            log.exception("internal error in event handler %r", callback)
            return None

    def close(self) -> None:
        self.epoll.close()
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
