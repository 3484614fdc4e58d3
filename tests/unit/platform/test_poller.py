"""Covers: sidecar.platform.poller, sidecar.loop.

epoll and pidfd as the seam offers them: a pipe with data is readable in the poller, a pidfd
becomes readable only once its process has exited, and the loop's masks are the seam's.
"""

from __future__ import annotations

import os
import subprocess
import sys

from sidecar import loop
from sidecar.platform import poller


def test_a_written_pipe_is_readable_and_an_empty_one_is_not():
    r, w = os.pipe()
    ep = poller.epoll()
    try:
        ep.register(r, poller.READ_EVENTS)
        assert ep.poll(0) == []
        os.write(w, b"x")
        [(fd, events)] = ep.poll(1.0)
        assert fd == r and events & poller.EPOLLIN
    finally:
        ep.close()
        os.close(r)
        os.close(w)


def test_a_pidfd_fires_when_its_process_exits():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    fd = poller.pidfd_open(child.pid)
    ep = poller.epoll()
    try:
        ep.register(fd, poller.READ_EVENTS)
        assert ep.poll(0.05) == []  # alive: not readable
        child.stdin.close()
        assert [f for f, _ in ep.poll(10.0)] == [fd]
    finally:
        ep.close()
        os.close(fd)
        child.wait(10)


def test_the_loop_waits_with_the_seams_masks():
    assert loop._READ_EVENTS == poller.READ_EVENTS
    assert loop._WRITE_EVENTS == poller.WRITE_EVENTS
    assert poller.READ_EVENTS & poller.EPOLLIN and not poller.READ_EVENTS & poller.EPOLLOUT
