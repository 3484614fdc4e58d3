"""The CPython client's libzmq link: one thread's DEALER socket to one sidecar, and its monitor.

Owns: the socket, the socket monitor that sees a connection drop (failover, large requests,
the first handshake), and the poller over both. Must not touch: the envelope, request ids,
error kinds (``bridge.client``). Used where the lean link (``bridge.zmtp_plain``) cannot go:
CURVE, and endpoints that are not ``tcp://host:port``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import zmq
from zmq.utils.monitor import parse_monitor_message

from bridge.protocol import Unauthorized, Unavailable

CONNECTED = zmq.EVENT_HANDSHAKE_SUCCEEDED
LOST = zmq.EVENT_DISCONNECTED
REFUSED = zmq.EVENT_CONNECT_RETRIED
# The sidecar refused our PLAIN token or CURVE key (its ZAP handler said no). Not a handshake
# cut short by a sidecar that died or restarted meanwhile: that is a protocol failure.
AUTH_FAILED = zmq.EVENT_HANDSHAKE_FAILED_AUTH
WATCHED = CONNECTED | LOST | REFUSED | AUTH_FAILED


def monitor_events(monitor: zmq.Socket) -> list[int]:
    """The events waiting on ``monitor`` (non-blocking)."""
    found = []
    while monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        found.append(parse_monitor_message(monitor.recv_multipart())["event"])
    return found


class ZmqLink:
    """One thread's DEALER socket to one endpoint (with a monitor when failover is on)."""

    __slots__ = ("sock", "monitor", "poller", "created", "connecting")

    def __init__(self, sock: zmq.Socket, monitor: zmq.Socket | None,
                 connecting: zmq.Socket | None = None) -> None:
        self.sock = sock
        self.monitor = monitor
        self.connecting = connecting  # a monitor of the first handshake only (no failover)
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        if monitor is not None:
            self.poller.register(monitor, zmq.POLLIN)
        self.created = time.monotonic()

    def watch(self) -> None:
        """Start a socket monitor (kept for the link's life) to see the connection drop."""
        if self.connecting is not None:  # one monitor per socket: keep the first one
            self.monitor, self.connecting = self.connecting, None
        else:
            self.monitor = self.sock.get_monitor_socket(WATCHED)
        self.poller.register(self.monitor, zmq.POLLIN)

    def events(self) -> list[int]:
        """Monitor events that arrived since the last look (non-blocking)."""
        return monitor_events(self.monitor) if self.monitor is not None else []

    def await_connection(self, monitor: zmq.Socket, endpoint: str, deadline: float,
                         patient: bool, unreachable: str,
                         refused: Callable[[], Unauthorized]) -> None:
        """Until the socket can send (connected), ``deadline`` (``Unavailable(unreachable)``), a
        refused handshake (``refused()``) or, not ``patient``, a refused connection."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLOUT)
        poller.register(monitor, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            ready = dict(poller.poll(max(0, int(left * 1000)))) if left > 0 else {}
            if self.sock in ready:
                return
            if not ready:
                raise Unavailable(unreachable)
            events = monitor_events(monitor)
            if any(event & AUTH_FAILED for event in events):
                raise refused()
            if REFUSED in events and not patient:
                raise Unavailable(f"the sidecar at {endpoint} refused the connection; is it "
                                  "running?")

    def close(self) -> None:
        for monitor in (self.monitor, self.connecting):
            if monitor is not None:
                try:
                    self.sock.disable_monitor()
                except zmq.ZMQError:
                    pass
                monitor.close(0)
        self.sock.close(0)
