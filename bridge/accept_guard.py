"""What a listening socket does when ``accept()`` fails for lack of resources, and the file
descriptor limit the sidecar runs with.

Owns: the back-off of a listener after ``EMFILE``/``ENFILE`` (stop polling it for a while, then
try again), one log line per interval with a count instead of one per failure, and raising the
soft ``RLIMIT_NOFILE`` to the hard limit. Must not touch: connections (the fronts own them),
the envelope, workers.

Why: while the limit is reached the pending connection stays in the listen backlog, so the
listening socket stays readable; a loop that retries at once spins at full CPU and writes a log
line per turn (issue 8, finding 5). Pausing the listener leaves the kernel's backlog to hold
new clients until descriptors are free again.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("py3sidecar.limits")

#: accept() errors that mean "out of descriptors or memory": back off, do not spin.
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
#: accept() errors about one pending connection only: skip it, accept the next.
TRANSIENT_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR)

BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 1.0
LOG_INTERVAL = 10.0


class AcceptGuard:
    """Pauses a listener after resource errors on accept, with a doubling back-off.

    ``pause()``/``resume()`` stop and restart polling the listener (the front's own
    callbacks); ``loop`` gives ``clock()`` and ``call_later()``.
    """

    def __init__(self, loop: Any, name: str, pause: Callable[[], None],
                 resume: Callable[[], None], *, advice: str = "") -> None:
        self.loop = loop
        self.name = name
        self.pause = pause
        self.resume = resume
        self.advice = advice
        self.backoff = BACKOFF_INITIAL
        self.paused = False
        self.failures = 0  # since the last log line
        self.failures_total = 0
        self.logged_at: float | None = None
        self.timer: Any = None

    def accepted(self) -> None:
        """A connection was accepted: the next failure starts the back-off from the bottom."""
        self.backoff = BACKOFF_INITIAL

    def failed(self, exc: OSError) -> bool:
        """Handle one accept() error; True when the caller must stop accepting for now."""
        if exc.errno in TRANSIENT_ERRORS:
            return False
        self.failures += 1
        self.failures_total += 1
        now = self.loop.clock()
        if self.logged_at is None or now - self.logged_at >= LOG_INTERVAL:
            log.warning("%s: cannot accept connections: %s (%d time(s) since the last report); "
                        "pausing the listener, retrying with a back-off up to %gs%s",
                        self.name, exc.strerror or exc, self.failures, BACKOFF_MAX,
                        f"; {self.advice}" if self.advice else "")
            self.logged_at = now
            self.failures = 0
        self.paused = True
        self.pause()
        self.timer = self.loop.call_later(self.backoff, self._retry)
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        return True

    def _retry(self) -> None:
        self.timer = None
        if self.paused:
            self.paused = False
            self.resume()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.paused = False


class ListenerSwitch:
    """A front's ``pause``/``resume`` for its guard: stop and restart polling the listener
    that ``listener()`` gives (None: the front stopped; nothing to do)."""

    def __init__(self, loop: Any, listener: Callable[[], Any],
                 on_accept: Callable[[], None]) -> None:
        self.loop, self.listener, self.on_accept = loop, listener, on_accept

    def pause(self) -> None:
        sock = self.listener()
        if sock is not None:
            self.loop.remove_reader(sock.fileno())

    def resume(self) -> None:
        sock = self.listener()
        if sock is not None:
            self.loop.add_reader(sock.fileno(), self.on_accept)


def accept_some(listener: Any, guard: AcceptGuard, limit: int) -> Iterator[tuple[Any, Any]]:
    """Up to ``limit`` pending connections, (socket, address) each; stops at an empty backlog,
    or when a resource error made ``guard`` pause the listener (never a spin)."""
    for _ in range(limit):
        try:
            sock, addr = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE and friends: pause the listener, never spin
            if guard.failed(exc):
                return
            continue
        guard.accepted()
        yield sock, addr


def _kernel_max_open() -> int:
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (before, after).

    systemd gives services a soft limit of 1024 by default, which about a thousand idle
    connections exhaust; the hard limit (the unit's LimitNOFILE) is what the operator allowed.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _kernel_max_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # e.g. a hard limit above the kernel's nr_open
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
            return soft, soft
        return soft, target
    return soft, soft
