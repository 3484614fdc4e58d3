"""Covers: tests/faults/proxy.py.

The fault-injecting proxy itself (proxy.py): an armed reset reaches BOTH ends at once.

Linux defers a close() (and so the RST that SO_LINGER 0 asks for) while another thread is
blocked in recv() on the same socket: the other pump thread always is. Before the fix, a reset
mid-reply sent half the chunk and then nothing, until the caller next sent something: a client
that only waits saw a silent link (its deadline), not a reset.
"""
from __future__ import annotations

import socket
import time

import pytest

from .proxy import REPLY, REQUEST, FaultProxy

WAIT = 3.0  # a bound on a loaded machine; the RST comes in milliseconds


def _read_until_closed(sock: socket.socket) -> tuple[bytes, str]:
    sock.settimeout(WAIT)
    got = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return got, "eof"
            got += data
    except ConnectionResetError:
        return got, "reset"
    except TimeoutError:
        return got, "silent"


@pytest.mark.parametrize("direction", [REPLY, REQUEST])
def test_an_armed_reset_reaches_both_ends_at_once(direction):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with server, FaultProxy(server.getsockname()[1]) as proxy:
        caller = socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT)
        upstream, _ = server.accept()
        with caller, upstream:
            proxy.reset_next(direction)
            sender, receiver = (upstream, caller) if direction == REPLY else (caller, upstream)
            t0 = time.monotonic()
            sender.sendall(b"x" * 100)
            got, how = _read_until_closed(receiver)
            assert (len(got), how) == (50, "reset"), "the receiver must get half, then an RST"
            assert _read_until_closed(sender) == (b"", "reset"), "the sender must get an RST"
            assert time.monotonic() - t0 < WAIT / 2
            assert proxy.wait_reset(1, WAIT)  # counted just after the RSTs went out
