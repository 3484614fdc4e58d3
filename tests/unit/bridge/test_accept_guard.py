"""Covers: bridge.accept_guard.

The open-files limit is raised to the hard limit at start, in a process whose soft limit was
lowered first (as systemd's 1024 would be).
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import resource
from bridge import accept_guard
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
before, after = accept_guard.raise_open_files_limit()
print(before, after > 64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] == after)
"""


def test_the_soft_limit_is_raised():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert out == ["64", "True", "True"]


class Listener:
    """accept() answers from a script: a connection, or an OSError to raise."""

    def __init__(self, script: list) -> None:
        self.script = script

    def accept(self):
        item = self.script.pop(0) if self.script else BlockingIOError()
        if isinstance(item, BaseException):
            raise item
        return item, ("peer", 1)

    def fileno(self) -> int:
        return 99


class Loop:
    def __init__(self) -> None:
        self.readers: dict[int, object] = {}
        self.timers: list = []

    def clock(self) -> float:
        return 0.0

    def call_later(self, delay, callback):
        self.timers.append((delay, callback))
        return type("T", (), {"cancel": lambda self: None})()

    def add_reader(self, fd, cb) -> None:
        self.readers[fd] = cb

    def remove_reader(self, fd) -> None:
        self.readers.pop(fd, None)


def test_accept_some_takes_up_to_the_limit_skips_transient_errors_pauses_on_emfile():
    import errno

    from bridge.accept_guard import AcceptGuard, ListenerSwitch, accept_some

    loop = Loop()
    listener = Listener(["a", OSError(errno.ECONNABORTED, "aborted"), "b", "c", "d"])
    switch = ListenerSwitch(loop, lambda: listener, lambda: None)
    switch.resume()
    guard = AcceptGuard(loop, "test front", switch.pause, switch.resume)
    # the limit counts attempts: a skipped (aborted) connection is one of them
    assert [s for s, _ in accept_some(listener, guard, 3)] == ["a", "b"]
    assert [s for s, _ in accept_some(listener, guard, 3)] == ["c", "d"]  # then an empty backlog
    listener.script = [OSError(errno.EMFILE, "Too many open files"), "e"]
    assert list(accept_some(listener, guard, 3)) == []  # paused, not spinning
    assert guard.paused and 99 not in loop.readers and loop.timers
    loop.timers[0][1]()  # the back-off's retry
    assert not guard.paused and 99 in loop.readers
    assert [s for s, _ in accept_some(listener, guard, 3)] == ["e"]


def test_the_switch_does_nothing_once_the_front_stopped():
    from bridge.accept_guard import ListenerSwitch

    loop = Loop()
    switch = ListenerSwitch(loop, lambda: None, lambda: None)
    switch.resume()
    switch.pause()
    assert loop.readers == {}
