"""Py4J front of the sidecar, served by the loop thread: the gateway's Jython calls
`apply(method, payload_bytes) -> bytes` on a py4j entry point, and this module speaks py4j's wire
protocol itself (no py4j threads, no hand-off): each request goes to ``Service.dispatch`` in the
same loop turn that read it, like the ZeroMQ front.

Owns: the listener (bind, accept, TCP_NODELAY), the connection cap (an unauthenticated
connection gives way to a new one; beyond it a reset, one log line per interval), the
authentication deadline, the idle timeout's sweep, and stopping. Must not touch: what is said on
a connection (``py4j_connection``: the state machine, its commands and answers; ``py4j_wire``:
the command syntax), the envelope's meaning (the handler, ``Service.dispatch``, decides),
workers.

Who listens, who connects (py4j 0.10.9.9, Jython 2.7.3, Java 17):

* Only this side listens, on `python_port` (default 25334, loopback). The JVM builds a
  `py4j.ClientServer` with `ClientServerBuilder().pythonPort(P).authToken(T)
  .autoStartJavaServer(False)`: it binds no port; `getPythonServerEntryPoint([BiFunction])`
  gives a proxy (object id ``t``) and every JVM thread that calls it opens its own socket here
  (py4j's pinned-thread model). Commands on one connection are strictly sequential; connections
  are independent and their replies may complete in any order.
* The sidecar never calls into the JVM, so `java_port` is never connected to (it is kept for the
  connection file only) and nothing is ever sent unprompted.
* With ``tls_context`` (python3.bridge.py4j.tls) every accepted socket first goes through a TLS
  handshake on the loop (``py4j_tls``, within ``handshake_timeout``); the JVM side gives the
  ClientServer an SSLSocketFactory (py3sidecar.transport). Plain peers get nothing.
"""
from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable

from bridge.accept_guard import LOG_INTERVAL, AcceptGuard, ListenerSwitch, accept_some
from bridge.loopback import is_loopback_host
from bridge.py4j_connection import LINGER_0, Handler, Py4JConnection
from bridge.py4j_tls import TlsHandshake
from bridge.py4j_wire import unescape  # noqa: F401 - re-exported (tests import it from here)

log = logging.getLogger("py3sidecar.py4j")

PRE_AUTH_LIMIT = 4096  # bytes a peer may send before it has authenticated (plus the token)
AUTH_DEADLINE = 10.0   # seconds a new connection has to authenticate before it is reset
HANDSHAKE_DEADLINE = 5.0  # seconds a new connection has to finish its TLS handshake
ACCEPT_PER_TURN = 64


class Py4JFront:
    """Serves ``handler(payload, reply)`` (``Service.dispatch``) to JVM py4j clients.

    Runs in ``loop``'s thread: start() and stop() too. ``python_port=0`` picks a free port (read
    it from ``.port`` after ``start()``).
    """

    description = "py3sidecar Py4J entry point"

    def __init__(self, loop, handler: Handler | Callable[..., None], host: str = "127.0.0.1",
                 java_port: int = 25333, python_port: int = 25334,
                 auth_token: str | None = None, max_message_bytes: int = 64 << 20,
                 max_connections: int = 1024, idle_timeout: float = 3600.0,
                 tls_context: ssl.SSLContext | None = None,
                 handshake_timeout: float = HANDSHAKE_DEADLINE,
                 pass_peer: bool = False,
                 on_refusal: Callable[[str, str], None] | None = None) -> None:
        self.loop = loop
        self.tls_context = tls_context
        self.handshake_timeout = handshake_timeout
        # pass_peer: the handler takes a third argument, the peer ("py4j:ADDRESS:PORT", for
        # the audit log; Service.dispatch does); a plain (payload, reply) handler is wrapped.
        self.handler = handler if pass_peer else (
            lambda payload, reply, peer: handler(payload, reply))
        # (kind, peer) of a refusal made here, before any request (a wrong token): audited
        self.on_refusal = on_refusal or (lambda kind, peer: None)
        self.host = host
        self.java_port = java_port
        self.python_port = python_port
        self.auth_token = auth_token
        self.token_bytes = auth_token.encode("utf-8") if auth_token is not None else b""
        # A request envelope travels as base64 (4/3) in one command line; twice the envelope
        # limit leaves room for `dispatch` to answer a too-big request with `bad_request`.
        self.max_command_bytes = (max_message_bytes * 2) * 4 // 3 + (1 << 16)
        self.max_message_bytes = max_message_bytes
        self.pre_auth_limit = PRE_AUTH_LIMIT + len(self.token_bytes)
        self.hash_code = id(self) & 0x7FFFFFFF
        self.listener: socket.socket | None = None
        self.connections: set[Py4JConnection] = set()
        self.dropped_replies = 0
        # python3.bridge.py4j.max-connections / idle-timeout (0: never): held connections
        # cannot use up the sidecar's descriptors and starve new JVM threads.
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refused = 0  # connections refused at the cap, since the last report
        self.refused_logged_at: float | None = None
        self.idle_timer = None
        switch = ListenerSwitch(loop, lambda: self.listener, self.on_accept)
        self.guard = AcceptGuard(loop, "py4j front", switch.pause, switch.resume,
                                 advice="raise LimitNOFILE in the unit or lower "
                                        "python3.bridge.py4j.max-connections")

    @property
    def endpoint(self) -> str:
        """``tcp://host:port`` (the bound port once started), for logs and loopback checks."""
        port = self.port
        return f"tcp://{self.host}:{self.python_port if port is None else port}"

    @property
    def port(self) -> int | None:
        """The port actually listened on (differs from python_port when that was 0)."""
        return self.listener.getsockname()[1] if self.listener is not None else None

    def start(self) -> None:
        if self.listener is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host.strip("[]"), self.python_port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.listener = sock
        self.loop.add_reader(sock.fileno(), self.on_accept)
        if self.idle_timeout:
            self.idle_timer = self.loop.call_later(self._sweep_interval(), self.close_idle)
        log.info("py4j front listening on %s:%s%s", self.host, self.port,
                 " (TLS only)" if self.tls_context is not None else "")
        if self.tls_context is None and not is_loopback_host(self.host):
            log.warning("py4j front: beyond loopback in clear text (the token, code and values "
                        "can be read on the network); set python3.bridge.py4j.tls")

    def _sweep_interval(self) -> float:
        return max(0.05, min(self.idle_timeout / 4, 30.0))

    def close_idle(self) -> None:
        """Close authenticated connections idle for ``idle_timeout`` (never one with a call in
        flight or output pending); runs every quarter of the timeout (at most 30 s)."""
        now = self.loop.clock()
        idle = [c for c in self.connections if c.authenticated and not c.busy and not c.out
                and now - c.last_active >= self.idle_timeout]
        for conn in idle:
            log.info("py4j front: connection from %s idle for %gs closed "
                     "(python3.bridge.py4j.idle-timeout)", conn.peer, now - conn.last_active)
            conn.close()
        if self.listener is not None:
            self.idle_timer = self.loop.call_later(self._sweep_interval(), self.close_idle)

    def make_room(self) -> bool:
        """At the cap, the oldest connection that has not authenticated gives way to a new
        one; True when there is room."""
        if len(self.connections) < self.max_connections:
            return True
        waiting = [c for c in self.connections if not c.authenticated]
        if not waiting:
            return False
        min(waiting, key=lambda c: c.last_active).close(reset=True)
        return True

    def refuse(self, sock: socket.socket, peer: str) -> None:
        self.refused += 1
        now = self.loop.clock()
        if self.refused_logged_at is None or now - self.refused_logged_at >= LOG_INTERVAL:
            log.warning("py4j front: %d connection(s) refused (latest from %s): %d are open, the "
                        "limit is python3.bridge.py4j.max-connections = %d", self.refused, peer,
                        len(self.connections), self.max_connections)
            self.refused_logged_at = now
            self.refused = 0
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        except OSError:
            pass
        sock.close()  # a reset: the JVM fails at once instead of waiting for an answer

    def on_accept(self) -> None:
        listener = self.listener
        if listener is None:
            return
        for sock, addr in accept_some(listener, self.guard, ACCEPT_PER_TURN):
            peer = f"{addr[0]}:{addr[1]}"
            if not self.make_room():
                self.refuse(sock, peer)
                continue
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if self.tls_context is not None:
                self.connections.add(TlsHandshake(self, sock, peer, self.tls_context,
                                                  self.handshake_timeout))
                continue
            self.serve(sock, peer, AUTH_DEADLINE)

    def serve(self, sock: socket.socket, peer: str, auth_deadline: float) -> Py4JConnection:
        conn = Py4JConnection(self, sock, peer)
        self.connections.add(conn)
        self.loop.add_reader(conn.fd, conn.on_readable)
        if not conn.authenticated:
            self.loop.call_later(auth_deadline, lambda conn=conn: self.auth_expired(conn))
        return conn

    def handshake_done(self, handshake: TlsHandshake, sock: ssl.SSLSocket) -> None:
        """A TLS handshake finished: py4j's conversation starts on the encrypted socket, with
        what is left of the authentication deadline (it runs from the accept)."""
        if self.listener is None:  # stopping
            sock.close()
            return
        elapsed = self.loop.clock() - handshake.accepted_at
        conn = self.serve(sock, handshake.peer, max(0.0, AUTH_DEADLINE - elapsed))
        conn.on_readable()  # the client's first command may have come with its last flight

    def auth_expired(self, conn: Py4JConnection) -> None:
        """A peer that connects and never authenticates does not keep a socket forever."""
        if not conn.closed and not conn.authenticated:
            log.warning("py4j front: %s did not authenticate within %gs; connection reset",
                        conn.peer, AUTH_DEADLINE)
            conn.close(reset=True)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops listening and closes every JVM connection (never blocks; ``timeout`` is kept
        for the fronts' common signature). Replies still due are dropped."""
        listener, self.listener = self.listener, None
        self.guard.cancel()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if listener is not None:
            self.loop.remove_reader(listener.fileno())
            listener.close()
        for conn in list(self.connections):
            conn.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
