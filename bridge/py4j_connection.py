"""One JVM connection to the Py4J front: py4j's conversation on one socket, line by line.

Owns: a connection's state machine (the handshake, then ``c``/``g`` commands), its input buffer
and line limits (before and after authentication, dropping an oversized line), answering the
entry point's calls (``apply`` to the front's handler, ``toString``/``hashCode``/``equals``
here), buffered non-blocking writes and closing (an RST when the peer must fail at once). Must
not touch: listening, accepting, the connection cap and timeouts (``py4j_server``), the
command syntax (``py4j_wire``), the envelope's meaning (the handler decides).

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

Over TLS (``py4j_tls`` did the handshake) the socket is an ``SSLSocket``: reads go on record by
record until ``SSLWantRead``, and decrypted bytes left inside it (``pending()``) are read next
turn; the bounds below apply to the plaintext.

Resource bounds: non-blocking sockets only; partial writes are buffered (at most one reply per
connection is ever pending). A line larger than about twice the envelope limit (base64
included) is dropped as it arrives and its call answered with a `bad_request` envelope (the
connection stays); a command whose lines together exceed that, or anything beyond 4 KiB before
authentication, closes the connection with a log line. A connection whose peer vanished while
its request was in the pool is closed at once; the pool's one reply is then dropped (counted in
the front's ``dropped_replies``).
"""

from __future__ import annotations

import binascii
import hmac
import logging
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from bridge import protocol
from bridge.codec import pack_raw
from bridge.py4j_wire import (
    AUTH_OK,
    ENTRY_POINT_ID,
    ERROR_RETURN,
    METHOD,
    SUCCESS_RETURN,
    bytes_return,
    decode_arg,
    error_return,
    escape,
)

log = logging.getLogger("py3sidecar.py4j")

# (payload, reply, peer): the peer is "py4j:ADDRESS:PORT", for the audit log.
Handler = Callable[[bytes, Callable[[bytes], None], str], None]

RECV_SIZE = 256 * 1024
RECV_PER_TURN = 16  # reads per readable event, so one big sender cannot starve the loop
LINGER_0 = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST, not a FIN
# Nothing to read or write now. Over TLS (``py4j_tls``) a read returns one record at most and a
# record may wait for its rest (SSLWantRead); no renegotiation, so a read never needs a write.
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: What an oversized (dropped) line reads as: never a valid py4j part (those start with a type).
OVERSIZED = b"\x00"


class Front(Protocol):
    """What a connection reads from its front (``py4j_server.Py4JFront``)."""

    loop: Any
    handler: Handler
    auth_token: str | None
    token_bytes: bytes
    max_command_bytes: int
    max_message_bytes: int
    pre_auth_limit: int
    description: str
    hash_code: int
    connections: set[Py4JConnection]
    dropped_replies: int
    on_refusal: Callable[[str, str], None]


def _error_envelope(kind: str, message: str) -> bytes:
    return pack_raw(protocol.error_reply(None, kind, message))


# Connection states: what the next line is.
_AUTH, _AUTH_TOKEN, _AUTH_END, _COMMAND, _OBJECT, _METHOD, _ARGS, _GC_END = range(8)


class Py4JConnection:
    __slots__ = ("front", "sock", "fd", "peer", "buf", "scan", "state", "command", "object_id",
                 "method", "args", "token", "cmd_bytes", "busy", "closed", "out", "feeding",
                 "close_when_flushed", "limit", "skipping", "oversized", "last_active", "tls")

    def __init__(self, front: Front, sock: socket.socket, peer: str) -> None:
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
        self.tls = isinstance(sock, ssl.SSLSocket)  # reads one record at a time: see on_readable

    @property
    def authenticated(self) -> bool:
        return self.state >= _COMMAND  # the states before _COMMAND are the handshake's

    # ------------------------------------------------------------ input
    def on_readable(self) -> None:
        if self.closed:  # a read scheduled for pending TLS bytes, after a close
            return
        sock, buf = self.sock, self.buf
        for _ in range(RECV_PER_TURN * 4 if self.tls else RECV_PER_TURN):
            try:
                data = sock.recv(RECV_SIZE)
            except WOULD_BLOCK:
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
            # Over TLS a read is one record: read on until SSLWantRead.
            short_read = len(data) < RECV_SIZE and not self.tls
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
        else:
            if self.tls and sock.pending():  # decrypted bytes the socket's readiness won't show
                self.front.loop.call_later(0, self.on_readable)
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
                # Never what it sent (it may be a token): its size and peer only.
                log.error("py4j connection from %s: unknown command (a %d-byte line)",
                          self.peer, len(self.command))
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
            self.check_token()

    def check_token(self) -> None:
        """The auth command is complete: serve commands, or refuse and close."""
        token, self.token = self.token, b""
        self.cmd_bytes = 0
        if hmac.compare_digest(token, self.front.token_bytes):
            self.state = _COMMAND
            self.limit = self.front.max_command_bytes
            self.write(AUTH_OK)
            return
        log.warning("py4j connection from %s refused: wrong auth token", self.peer)
        self.front.on_refusal(protocol.UNAUTHORIZED, "py4j:" + self.peer)
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
            front.handler(payload, reply, "py4j:" + self.peer)
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
            except WOULD_BLOCK:
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
            except WOULD_BLOCK:
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
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.out.clear()
        self.buf = bytearray()
        self.front.connections.discard(self)
