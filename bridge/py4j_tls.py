"""A TLS handshake on the loop, before a Py4J connection exists (``python3.bridge.py4j.tls``).

Owns: one accepted socket from accept to a finished handshake: telling a plain peer from a TLS
one by its first byte (a plain peer gets nothing: a reset), driving ``do_handshake`` on the
non-blocking socket from the loop's readiness (``SSLWantRead``: wait readable;
``SSLWantWrite``: wait writable), and the handshake's deadline (a peer that opens TCP, or
TLS, and then says nothing is reset when it passes). Must not touch: what is said once the
handshake is done (``py4j_connection``), accepting and the connection cap (``py4j_server``,
which counts a handshake as a connection that has not authenticated, so it gives way first).

    accept -> TlsHandshake (peek 1 byte: 0x16?) -> do_handshake ... -> front.handshake_done
                  | not TLS / failed / deadline: RST, one log line, nothing sent
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

from bridge.py4j_connection import LINGER_0
from bridge.tls import HANDSHAKE_RECORD

log = logging.getLogger("py3sidecar.py4j")


class TlsHandshake:
    """Stands in the front's ``connections`` (as not authenticated) until the handshake ends;
    then ``front.handshake_done(tls_socket, peer, accepted_at)`` takes over."""

    __slots__ = ("front", "raw", "tls", "fd", "peer", "closed", "last_active", "accepted_at",
                 "timer", "writing")
    authenticated = False
    busy = False
    out = ()

    def __init__(self, front: Any, sock: socket.socket, peer: str,
                 context: ssl.SSLContext, timeout: float) -> None:
        self.front = front
        self.raw = sock
        self.tls: ssl.SSLSocket | None = None
        self.fd = sock.fileno()
        self.peer = peer
        self.closed = False
        self.writing = False
        self.last_active = self.accepted_at = front.loop.clock()
        self.timer = front.loop.call_later(timeout, lambda: self.expired(timeout))
        front.loop.add_reader(self.fd, lambda: self.step(context))

    def step(self, context: ssl.SSLContext) -> None:
        if self.closed:
            return
        if self.tls is None:
            try:
                first = self.raw.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close(reset=True)
                return
            if not first:
                self.close(reset=True)
                return
            if first[0] != HANDSHAKE_RECORD:
                # Never what it sent (it may be a token): the peer and what it looks like.
                log.warning("py4j front: %s sent plain text to the TLS front "
                            "(python3.bridge.py4j.tls.enabled); connection reset, nothing "
                            "answered: the client must connect over TLS", self.peer)
                self.close(reset=True)
                return
            self.tls = context.wrap_socket(self.raw, server_side=True,
                                           do_handshake_on_connect=False)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.want_write(False)
            return
        except ssl.SSLWantWriteError:
            self.want_write(True)
            return
        except (ssl.SSLError, OSError) as exc:
            log.warning("py4j front: TLS handshake with %s failed (%s); connection reset",
                        self.peer, getattr(exc, "reason", None) or exc)
            self.close(reset=True)
            return
        tls, self.tls = self.tls, None
        self.finish()
        self.front.handshake_done(self, tls)

    def want_write(self, on: bool) -> None:
        if on != self.writing:
            self.writing = on
            if on:
                self.front.loop.add_writer(self.fd, lambda: self.step(self.tls.context))
            else:
                self.front.loop.remove_writer(self.fd)

    def expired(self, timeout: float) -> None:
        if not self.closed:
            log.warning("py4j front: %s did not finish the TLS handshake within %gs; connection "
                        "reset", self.peer, timeout)
            self.close(reset=True)

    def finish(self) -> None:
        """Stops watching the socket (it is handed on, or closed next)."""
        self.closed = True
        self.timer.cancel()
        loop = self.front.loop
        loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        self.front.connections.discard(self)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.finish()
        sock = self.tls if self.tls is not None else self.raw
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        except OSError:
            pass
        sock.close()
