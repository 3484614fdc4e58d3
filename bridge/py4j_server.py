"""Py4J front of the sidecar, served by the loop thread: the gateway's Jython calls
`apply(method, payload_bytes) -> bytes` on a py4j entry point, and this module speaks py4j's wire
protocol itself (no py4j threads, no hand-off): each request goes to ``Service.dispatch`` in the
same loop turn that read it, like the ZeroMQ front.

Who listens, who connects (py4j 0.10.9.9, Jython 2.7.3, Java 17):

* Only this side listens, on `python_port` (default 25334, loopback). The JVM builds a
  `py4j.ClientServer` with `ClientServerBuilder().pythonPort(P).authToken(T)
  .autoStartJavaServer(False)`: it binds no port; `getPythonServerEntryPoint([BiFunction])`
  gives a proxy (object id ``t``) and every JVM thread that calls it opens its own socket here
  (py4j's pinned-thread model). Commands on one connection are strictly sequential; connections
  are independent and their replies may complete in any order.
* The sidecar never calls into the JVM, so `java_port` is never connected to (it is kept for the
  connection file only) and nothing is ever sent unprompted.

What a JVM sends on a connection, and the answers (mirroring py4j's Python side,
``clientserver.ClientServerConnection.wait_for_commands`` and ``java_gateway.do_client_auth``):

* ``A\\n<token>\\ne\\n`` first (``NetworkUtil.authToServer``). Right token: ``!yv\\n``. Wrong
  token: ``!xn\\n`` and the connection is reset (SO_LINGER 0), so the JVM raises "Authentication
  with callback server unsuccessful." (the Jython library's AuthFailed -> Unauthorized). Any other
  first command: reset without an answer. The token is compared in constant time.
* ``c\\n<object id>\\n<method>\\n<arg>\\n...e\\n`` (``PythonProxyHandler.invoke``; arguments
  are py4j command parts: ``s`` escaped string, ``j`` base64 byte[], ``i``/``L``/``d``/``b``/``n``,
  ``r`` a JVM object reference). On the entry point: ``apply("request", byte[])`` ->
  ``!yj<base64 reply envelope>\\n`` once ``dispatch`` replies; ``toString()``, ``hashCode()`` and
  ``equals(o)`` (the JVM proxies every interface method, java.lang.Object's included) are
  answered here; other methods or object ids -> ``!xs<escaped message>\\n`` (the JVM raises
  Py4JException). Unlike py4j, an unknown object id's arguments are consumed too.
* ``g\\n<object id>\\ne\\n`` (proxy garbage-collected; memory management is off on the gateway,
  and the entry point is never collected) -> ``!y\\n``.
* Any other command: ``!xn\\n`` (py4j: "the protocol is broken", the connection stays).
  An empty object id line, or end of stream, closes the connection.

Resource bounds: non-blocking sockets only; partial writes are buffered (at most one reply per
connection is ever pending). A line larger than about twice the envelope limit (base64
included) is dropped as it arrives and its call answered with a `bad_request` envelope (the
connection stays); a command whose lines together exceed that, or anything beyond 4 KiB before
authentication, closes the connection with a log line. A connection whose peer vanished while
its request was in the pool is closed at once; the pool's one reply is then dropped (counted in
``dropped_replies``).
"""
from __future__ import annotations

import binascii
import hmac
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable

from bridge import protocol
from bridge.accept_guard import LOG_INTERVAL, AcceptGuard
from bridge.codec import pack_raw

log = logging.getLogger("py3sidecar.py4j")

Handler = Callable[[bytes, Callable[[bytes], None]], None]

#: The only `method` the entry point's apply() accepts; the payload is one request envelope.
METHOD = "request"
ENTRY_POINT_ID = b"t"  # py4j's ENTRY_POINT_OBJECT_ID

AUTH_OK = b"!yv\n"  # OUTPUT_VOID_COMMAND
ERROR_RETURN = b"!xn\n"  # ERROR_RETURN_MESSAGE
SUCCESS_RETURN = b"!y\n"  # SUCCESS_RETURN_MESSAGE
PRE_AUTH_LIMIT = 4096  # bytes a peer may send before it has authenticated (plus the token)
AUTH_DEADLINE = 10.0   # seconds a new connection has to authenticate before it is reset
RECV_SIZE = 256 * 1024
RECV_PER_TURN = 16  # reads per readable event, so one big sender cannot starve the loop
ACCEPT_PER_TURN = 64
_LINGER_0 = struct.pack("ii", 1, 0)
#: What an oversized (dropped) line reads as: never a valid py4j part (those start with a type).
OVERSIZED = b"\x00"


def escape(text: str) -> str:
    """py4j's escape_new_line (and the JVM's StringUtil.escape)."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def unescape(escaped: str) -> str:
    """py4j's unescape_new_line, exactly (including its handling of odd input)."""
    if not escaped:
        return escaped
    return "\\".join("\n".join("\r".join(p.split("\\r")).split("\\n"))
                     for p in escaped.split("\\\\"))


def error_return(message: str) -> bytes:
    """``!xs<message>``: what py4j returns when the Python side of a proxy call raised."""
    return b"!xs" + escape(message).encode("utf-8") + b"\n"


def bytes_return(data: bytes) -> bytes:
    return b"!yj" + binascii.b2a_base64(data, newline=False) + b"\n"


class JavaRef:
    """An argument that is a JVM object (``r<id>``) or another py4j type we do not convert."""

    __slots__ = ("part",)

    def __init__(self, part: str) -> None:
        self.part = part

    def __repr__(self) -> str:
        return f"<JVM value {self.part!r}>"


def decode_arg(part: bytes) -> object:
    """One py4j command part (as ``get_return_value("y" + part)`` reads it) -> a Python value."""
    kind, value = part[:1], part[1:]
    if kind == b"j":
        return binascii.a2b_base64(value)  # non-strict, like py4j's standard_b64decode
    text = value.decode("utf-8")
    if kind == b"s":
        return unescape(text)
    if kind == b"n":
        return None
    if kind in (b"i", b"L"):
        return int(text)
    if kind == b"b":
        return text.lower() == "true"
    if kind == b"d":
        return float(text)
    return JavaRef(part.decode("utf-8"))


def _error_envelope(kind: str, message: str) -> bytes:
    return pack_raw(protocol.error_reply(None, kind, message))


# Connection states: what the next line is.
_AUTH, _AUTH_TOKEN, _AUTH_END, _COMMAND, _OBJECT, _METHOD, _ARGS, _GC_END = range(8)


class _Connection:
    __slots__ = ("front", "sock", "fd", "peer", "buf", "scan", "state", "command", "object_id",
                 "method", "args", "token", "cmd_bytes", "busy", "closed", "out", "feeding",
                 "close_when_flushed", "limit", "skipping", "oversized", "last_active")

    def __init__(self, front: Py4JFront, sock: socket.socket, peer: str) -> None:
        self.front = front
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.buf = bytearray()
        self.scan = 0  # where to look for the next newline in buf
        self.state = _COMMAND if front.auth_token is None else _AUTH
        self.limit = front.max_command_bytes if self.authenticated else front.pre_auth_limit
        self.command = self.object_id = self.method = self.token = b""
        self.args: list[bytes] = []
        self.cmd_bytes = 0  # bytes of the current command already taken out of buf
        self.busy = False  # a request is with the service; its reply has not been written
        self.closed = False
        self.feeding = False
        self.close_when_flushed = False
        self.out: deque[memoryview] = deque()
        self.skipping = 0  # bytes of an oversized line dropped so far (0: not inside one)
        self.last_active = front.loop.clock()  # for the idle timeout
        self.oversized = 0  # the size of the last oversized line, for its bad_request

    @property
    def authenticated(self) -> bool:
        return self.state >= _COMMAND  # the states before _COMMAND are the handshake's

    # ------------------------------------------------------------ input
    def on_readable(self) -> None:
        sock, buf = self.sock, self.buf
        for _ in range(RECV_PER_TURN):
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # reset by the peer
                log.debug("py4j connection from %s: %s", self.peer, exc)
                self.close(reset=True)
                return
            if not data:
                # End of stream: py4j's reader sees an empty command (and, unauthenticated, a
                # failed handshake: reset). A request in the pool has its reply dropped.
                if self.busy:
                    log.info("py4j connection from %s closed with its request in flight; the "
                             "reply will be dropped", self.peer)
                self.close(reset=not self.authenticated)
                return
            short_read = len(data) < RECV_SIZE
            self.last_active = self.front.loop.clock()
            if self.skipping:  # inside an oversized line: drop it up to its newline
                nl = data.find(b"\n")
                if nl < 0:
                    self.skipping += len(data)
                    if short_read:
                        break
                    continue
                self.oversized, self.skipping = self.skipping + nl, 0
                buf += OVERSIZED  # stands in for the line; the newline below ends it
                data = data[nl:]
            buf += data
            if len(buf) + self.cmd_bytes > self.limit and not self.skip_line():
                log.warning("py4j connection from %s closed: it sent a command over %d bytes%s",
                            self.peer, self.limit,
                            "" if self.authenticated else " before authenticating")
                self.close(reset=True)
                return
            if short_read:
                break
        self.feed()

    def skip_line(self) -> bool:
        """An authenticated peer's line too large to buffer is dropped as it arrives, and its
        call answered ``bad_request`` (``call``): the JVM learns why at once and the connection
        stays. False when that cannot help (not authenticated, or complete lines are too big)."""
        if not self.authenticated:
            return False
        buf = self.buf
        while len(buf) + self.cmd_bytes > self.limit:
            at = max(0, self.limit - self.cmd_bytes)  # where the limit is crossed
            start = buf.rfind(b"\n", 0, at) + 1
            end = buf.find(b"\n", at)
            length = (len(buf) if end < 0 else end) - start
            if length < self.limit // 2:
                return False  # many lines, not one huge one: a broken or hostile peer
            if end < 0:  # the line goes on: drop what came, and the rest as it comes
                self.skipping = length
                del buf[start:]
            else:
                self.oversized = length
                buf[start:end] = OVERSIZED
            self.scan = min(self.scan, start)
        return True

    def feed(self) -> None:
        """Handle every complete line buffered, until a request is in flight."""
        if self.feeding:
            return  # a reply that came back synchronously: the outer call goes on
        self.feeding = True
        buf = self.buf
        pos = 0
        try:
            while not self.busy and not self.closed:
                nl = buf.find(b"\n", self.scan)
                if nl < 0:
                    self.scan = len(buf)
                    break
                line = bytes(buf[pos:nl])
                self.cmd_bytes += nl + 1 - pos
                pos = self.scan = nl + 1
                self.on_line(line)
        finally:
            self.feeding = False
            if pos and not self.closed:
                del buf[:pos]
                self.scan -= pos

    def on_line(self, line: bytes) -> None:
        state = self.state
        if state == _ARGS:
            if line == b"e":
                self.cmd_bytes = 0
                self.state = _COMMAND
                self.call(self.object_id, self.method, self.args)
                self.args = []
            else:
                self.args.append(line)
        elif state == _COMMAND:
            self.command = line
            self.state = _OBJECT
        elif state == _OBJECT:
            self.object_id = line
            if not line.strip():  # py4j: an empty object id ends the connection
                self.close()
            elif self.command == b"c":
                self.state = _METHOD
            elif self.command == b"g":
                self.state = _GC_END
            else:
                log.error("py4j connection from %s: unknown command %r", self.peer,
                          self.command[:40])
                self.cmd_bytes = 0
                self.state = _COMMAND
                self.write(ERROR_RETURN)
        elif state == _METHOD:
            self.method = line
            self.state = _ARGS
        elif state == _GC_END:
            self.cmd_bytes = 0
            self.state = _COMMAND
            self.write(SUCCESS_RETURN)
        elif state == _AUTH:
            if line != b"A":
                # Never what it sent (it may be a token): its size and peer only.
                log.warning("py4j connection from %s refused: it did not authenticate first "
                            "(sent a %d-byte line)", self.peer, len(line))
                self.close(reset=True)
            else:
                self.state = _AUTH_TOKEN
        elif state == _AUTH_TOKEN:
            self.token = line
            self.state = _AUTH_END
        elif state == _AUTH_END:  # py4j reads the END line without looking at it
            token, self.token = self.token, b""
            self.cmd_bytes = 0
            if hmac.compare_digest(token, self.front.token_bytes):
                self.state = _COMMAND
                self.limit = self.front.max_command_bytes
                self.write(AUTH_OK)
            else:
                log.warning("py4j connection from %s refused: wrong auth token", self.peer)
                self.write(ERROR_RETURN)
                self.close_when_flushed = True
                self.state = _AUTH  # nothing more is read
                if not self.out:
                    self.close(reset=True)

    # ------------------------------------------------------------ calls
    def call(self, object_id: bytes, method_line: bytes, parts: list[bytes]) -> None:
        if OVERSIZED in parts or OVERSIZED in (object_id, method_line):
            size, self.oversized = self.oversized, 0
            limit = self.front.max_message_bytes
            self.write(bytes_return(_error_envelope(
                protocol.BAD_REQUEST,
                f"the request is about {size * 3 // 4} bytes, far above the limit of {limit} "
                "(python3.bridge.max-message-size); send less data per call")))
            return
        try:
            method = method_line.decode("utf-8")
            if object_id != ENTRY_POINT_ID:
                self.write(error_return("Object ID unknown"))
                return
            args = [decode_arg(p) for p in parts]
        except (ValueError, binascii.Error) as exc:  # bad UTF-8, number or base64
            self.write(error_return(f"{type(exc).__name__}: {exc}"))
            return
        if method == "apply":
            self.apply(args)
        elif method == "toString" and not args:
            self.write(b"!ys" + escape(self.front.description).encode() + b"\n")
        elif method == "hashCode" and not args:
            self.write(b"!yi%d\n" % self.front.hash_code)
        elif method == "equals" and len(args) == 1:
            # The JVM sends the other object as a reference it made up for this call: the proxy
            # cannot be recognised, so it equals nothing (py4j would raise instead).
            self.write(b"!ybfalse\n")
        else:
            self.write(error_return(
                f"AttributeError: the py3sidecar entry point has no method {method}() taking "
                f"{len(args)} argument(s); it is a java.util.function.BiFunction: "
                f"apply({METHOD!r}, byte[])"))

    def apply(self, args: list[object]) -> None:
        if len(args) != 2:
            self.write(error_return(f"TypeError: apply() takes 2 arguments ({len(args)} given)"))
            return
        method, payload = args
        if method != METHOD:
            self.write(bytes_return(_error_envelope(
                protocol.BAD_REQUEST, f"unknown py4j method {method!r} (expected {METHOD!r})")))
            return
        if not isinstance(payload, bytes):
            self.write(bytes_return(_error_envelope(
                protocol.BAD_REQUEST, "payload must be a byte[] holding a msgpack envelope")))
            return
        self.busy = True
        front = self.front
        replied = False

        def reply(data: bytes) -> None:
            nonlocal replied
            if replied:  # the service answers once; never write a second answer
                log.error("py4j front: a second reply to one request was ignored")
                return
            replied = True
            self.last_active = front.loop.clock()
            if self.closed:
                front.dropped_replies += 1
                log.info("py4j front: reply dropped, the connection from %s is gone", self.peer)
                return
            self.busy = False
            self.write(bytes_return(data))
            if not self.closed:
                self.feed()  # a command that arrived meanwhile (py4j never sends one)

        try:
            front.handler(payload, reply)
        except Exception as exc:  # the handler must not raise; never let the JVM hang on it
            log.exception("py4j front: the request handler raised")
            if not replied:
                reply(_error_envelope(protocol.INTERNAL, f"sidecar handler failed: {exc}"))

    # ------------------------------------------------------------ output
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.out:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                log.debug("py4j connection from %s: write failed: %s", self.peer, exc)
                self.close(reset=True)
                return
            if sent == len(data):
                return
            self.front.loop.add_writer(self.fd, self.on_writable)
            data = memoryview(data)[sent:]
        self.out.append(memoryview(data))

    def on_writable(self) -> None:
        out = self.out
        while out:
            chunk = out[0]
            try:
                sent = self.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("py4j connection from %s: write failed: %s", self.peer, exc)
                self.close(reset=True)
                return
            if sent < len(chunk):
                out[0] = chunk[sent:]
                return
            out.popleft()
        self.front.loop.remove_writer(self.fd)
        if self.close_when_flushed:
            self.close(reset=True)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.front.loop
        loop.remove_reader(self.fd)  # before close(): the fd number may be reused at once
        loop.remove_writer(self.fd)
        try:
            if reset:  # like py4j's set_linger: an RST, so the JVM's reads and writes fail
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.out.clear()
        self.buf = bytearray()
        self.front.connections.discard(self)


class Py4JFront:
    """Serves ``handler(payload, reply)`` (``Service.dispatch``) to JVM py4j clients.

    Runs in ``loop``'s thread: start() and stop() too. ``python_port=0`` picks a free port (read
    it from ``.port`` after ``start()``).
    """

    description = "py3sidecar Py4J entry point"

    def __init__(self, loop, handler: Handler, host: str = "127.0.0.1",
                 java_port: int = 25333, python_port: int = 25334,
                 auth_token: str | None = None, max_message_bytes: int = 64 << 20,
                 max_connections: int = 1024, idle_timeout: float = 3600.0) -> None:
        self.loop = loop
        self.handler = handler
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
        self.connections: set[_Connection] = set()
        self.dropped_replies = 0
        # python3.bridge.py4j.max-connections / idle-timeout (0: never): held connections
        # cannot use up the sidecar's descriptors and starve new JVM threads.
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.refused = 0  # connections refused at the cap, since the last report
        self.refused_logged_at: float | None = None
        self.idle_timer = None
        self.guard = AcceptGuard(loop, "py4j front", self._pause_accepting,
                                 self._resume_accepting,
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
        log.info("py4j front listening on %s:%s", self.host, self.port)

    def _pause_accepting(self) -> None:
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())

    def _resume_accepting(self) -> None:
        if self.listener is not None:
            self.loop.add_reader(self.listener.fileno(), self.on_accept)

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
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        except OSError:
            pass
        sock.close()  # a reset: the JVM fails at once instead of waiting for an answer

    def on_accept(self) -> None:
        listener = self.listener
        if listener is None:
            return
        for _ in range(ACCEPT_PER_TURN):
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: pause the listener, never spin
                if self.guard.failed(exc):
                    return
                continue
            self.guard.accepted()
            peer = f"{addr[0]}:{addr[1]}"
            if not self.make_room():
                self.refuse(sock, peer)
                continue
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            conn = _Connection(self, sock, peer)
            self.connections.add(conn)
            self.loop.add_reader(conn.fd, conn.on_readable)
            if not conn.authenticated:
                self.loop.call_later(AUTH_DEADLINE, lambda conn=conn: self.auth_expired(conn))

    def auth_expired(self, conn: _Connection) -> None:
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
