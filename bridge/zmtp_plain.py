"""A ZMTP/3.0 PLAIN DEALER over a plain TCP socket: the CPython client's lean link.

Owns: one TCP connection to a sidecar's ROUTER, its ZMTP/3.0 greeting and PLAIN handshake
(HELLO, WELCOME, INITIATE, READY: RFC 23/ZMTP, RFC 24/ZMTP-PLAIN), single-frame messages both
ways with a deadline on every wait, PING answered with PONG. Must not touch: the envelope (its
bytes pass through untouched), request ids, what a failure means for a call
(``bridge.plain_client``).

Why not libzmq here: a libzmq socket hands every message to its I/O thread and back (eventfd
signals, ``poll`` and ``getpid`` calls, two more thread wake-ups per call), which cost the
client process several times what the call itself does. This link costs one ``send``, one
``poll`` and one ``recv`` per call in the calling thread. CURVE (and any endpoint that is not
``tcp://host:port``) stays on libzmq; so does the sidecar's side.

A link belongs to one thread (the client keeps one per thread and endpoint). The socket
is non-blocking: every wait is a ``poll`` bounded by the caller's deadline (rounded up to the
next millisecond, so a wait never ends before it).
"""

from __future__ import annotations

import select
import socket
import struct
import time

GREETING = (b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"PLAIN".ljust(20, b"\0") + b"\0"
            + bytes(31))
_MORE, _LONG, _COMMAND = 1, 2, 4
_SCRATCH = 16 << 10  # smaller replies are read into one reused buffer (per thread and endpoint)
_SHORT = struct.Struct(">BB")
_LONG_HEAD = struct.Struct(">BQ")
# select.poll is POSIX: elsewhere (Windows) the client keeps its libzmq link.
AVAILABLE = hasattr(select, "poll")
_ERR = getattr(select, "POLLHUP", 16) | getattr(select, "POLLERR", 8)
_IN = getattr(select, "POLLIN", 1) | _ERR
_OUT = getattr(select, "POLLOUT", 4) | _ERR


class LinkDown(Exception):
    """The connection could not be made, or broke; the message says how. ``refused``: nothing
    listens there (the TCP connection was refused)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class Refused(LinkDown):
    """The sidecar refused our credentials at the handshake (a ZMTP ERROR command)."""


def tcp_address(endpoint: str) -> tuple[str, int] | None:
    """``tcp://host:port`` (``tcp://[::1]:port`` too) -> (host, port); anything else: None."""
    if not endpoint.startswith("tcp://"):
        return None
    host, sep, port = endpoint[6:].rpartition(":")
    if not sep or not port.isdigit() or not host or ";" in host or "*" in host:
        return None
    return host.strip("[]"), int(port)


def _command(name: bytes, body: bytes = b"") -> bytes:
    return bytes((len(name),)) + name + body


def _frame(body: bytes, command: bool = False) -> bytes:
    flags = _COMMAND if command else 0
    if len(body) > 255:
        return _LONG_HEAD.pack(flags | _LONG, len(body)) + body
    return _SHORT.pack(flags, len(body)) + body


def _is_error(body: bytes | bytearray) -> bool:
    """An ERROR command (libzmq 4.3's PLAIN server writes its name ``"\\x5ERROR"`` in C, which
    comes out as ``^RROR``: both spellings are taken)."""
    return body[:6] == b"\x05ERROR" or body[:5] == b"^RROR"


class PlainLink:
    """One thread's ZMTP PLAIN connection to one sidecar (connected on first use)."""

    __slots__ = ("address", "username", "password", "sock", "poller", "buf", "view", "start",
                 "end")

    def __init__(self, address: tuple[str, int], username: str, password: str) -> None:
        self.address = address
        self.username = username.encode()
        self.password = password.encode()
        self.sock: socket.socket | None = None
        self.poller = select.poll()
        self.buf = bytearray(_SCRATCH)
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # unread bytes: buf[start:end]

    # ------------------------------------------------------------ connection
    def connect(self, deadline: float) -> None:
        """TCP connection and PLAIN handshake by ``deadline``; ``LinkDown``/``Refused``."""
        self.close()
        left = deadline - time.monotonic()
        if left <= 0:
            raise LinkDown("no time left to connect")
        try:
            sock = socket.create_connection(self.address, timeout=left)
        except OSError as exc:
            raise LinkDown(exc.strerror or type(exc).__name__,
                           isinstance(exc, ConnectionRefusedError)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.poller.register(sock, _IN)
        self.start = self.end = 0
        try:
            self._handshake(deadline)
        except BaseException:
            self.close()
            raise

    def _handshake(self, deadline: float) -> None:
        self._send_all(GREETING, deadline)
        try:
            peer = self._read_exact(64, deadline)
        except LinkDown:  # a server of another mechanism may close as soon as it read ours
            if self.end - self.start < 32:
                raise
            peer = self.view[self.start:self.end]
        if peer[0] != 0xFF or peer[9] & 1 != 1 or peer[10] < 3:
            raise LinkDown("the peer does not speak ZMTP/3 (is it a py3sidecar?)")
        mechanism = bytes(peer[12:32]).rstrip(b"\0").decode("ascii", "replace")
        if mechanism != "PLAIN":
            raise LinkDown(f"the sidecar's ZeroMQ front uses {mechanism}, not PLAIN (under "
                           "CURVE give the client its server key)")
        hello = _command(b"HELLO", bytes((len(self.username),)) + self.username
                         + bytes((len(self.password),)) + self.password)
        self._send_all(_frame(hello, True), deadline)
        self._expect(b"WELCOME", deadline)
        kind = b"Socket-Type"
        ready = _command(b"INITIATE", bytes((len(kind),)) + kind + struct.pack(">I", 6)
                         + b"DEALER")
        self._send_all(_frame(ready, True), deadline)
        self._expect(b"READY", deadline)

    def _expect(self, name: bytes, deadline: float) -> None:
        body = self._read_frame(deadline, commands=True)
        if body is None:
            raise LinkDown("the handshake did not finish in time")
        got = bytes(body[1:1 + body[0]]) if body else b""
        if _is_error(body):
            raise Refused("the sidecar refused this client's credentials")
        if got != name:
            raise LinkDown(f"the handshake got {got!r} where {name.decode()} was due")

    def idle_ok(self) -> bool:
        """Still connected (checked without waiting before a request is sent): False when the
        sidecar closed the link meanwhile. Bytes that arrived (stale replies) are kept."""
        if self.sock is None:
            return False
        if not self.poller.poll(0):
            return True
        try:
            return self._fill() > 0
        except LinkDown:
            return False

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                self.poller.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    # ------------------------------------------------------------ messages
    def send(self, payload: bytes, deadline: float) -> None:
        """One frame; a request below 64 KiB goes in one ``send`` (header and body joined)."""
        size = len(payload)
        if size >= 1 << 16:  # not copied: the header, then the payload itself
            self._send_all(_LONG_HEAD.pack(_LONG, size), deadline)
            self._send_all(payload, deadline)
            return
        data = (_SHORT.pack(0, size) if size < 256 else _LONG_HEAD.pack(_LONG, size)) + payload
        try:
            sent = self.sock.send(data)  # type: ignore[union-attr]
        except (OSError, AttributeError):  # full, broken or closed: _send_all tells which
            sent = 0
        if sent != len(data):
            self._send_all(data[sent:], deadline)

    def recv(self, deadline: float) -> bytes | bytearray | memoryview | None:
        """The next message, or None at ``deadline``; ``LinkDown`` when the link broke. A
        memoryview is valid until the next read on this link (decode it before)."""
        if self.start == self.end and self.sock is not None:  # the common case: one read
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller.poll(int(left * 1000) + 1):
                return None
            self.start = self.end = 0
            got = self._fill()
            buf = self.buf
            if got >= 2 and buf[0] == 0 and buf[1] == got - 2:  # exactly one short message
                self.end = 0
                return self.view[2:got]
        return self._read_frame(deadline, commands=False)

    # ------------------------------------------------------------ bytes with deadlines
    def _send_all(self, data: bytes, deadline: float) -> None:
        sock = self.sock
        assert sock is not None
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise LinkDown(exc.strerror or type(exc).__name__) from None
            view = view[sent:]
            if view and not self._wait(deadline, _OUT):
                raise LinkDown("the sidecar did not take the request in time")

    def _wait(self, deadline: float, events: int) -> bool:
        left = deadline - time.monotonic()
        if left <= 0 or self.sock is None:
            return False
        self.poller.modify(self.sock, events)
        try:
            return bool(self.poller.poll(int(left * 1000) + 1))
        finally:
            self.poller.modify(self.sock, _IN)

    def _fill(self) -> int:
        """One ``recv`` into the scratch buffer (compacted first); LinkDown at end of stream."""
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            rest = self.end - self.start
            self.buf[:rest] = self.buf[self.start:self.end]
            self.start, self.end = 0, rest
        if self.sock is None:
            raise LinkDown("the link was closed")
        try:
            got = self.sock.recv_into(self.view[self.end:])
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise LinkDown(exc.strerror or type(exc).__name__) from None
        if not got:
            raise LinkDown("the sidecar closed the connection")
        self.end += got
        return got

    def _await_bytes(self, deadline: float) -> bool:
        """More bytes in the buffer (True), or the deadline passed (False)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller.poll(int(left * 1000) + 1):
                return False
            if self._fill():
                return True

    def _read_exact(self, size: int, deadline: float) -> memoryview:
        while self.end - self.start < size:
            if not self._await_bytes(deadline):
                raise LinkDown("the handshake did not finish in time")
        out = self.view[self.start:self.start + size]
        self.start += size
        return out

    def _read_frame(self, deadline: float, commands: bool) -> bytes | bytearray | None:
        """The next data frame (or command, when ``commands``); PING answered on the way."""
        while True:
            body = self._next_frame(deadline)
            if body is None:
                return None
            flags, data = body
            if flags & _COMMAND:
                if commands:
                    return data
                name = bytes(data[1:1 + data[0]]) if data else b""
                if name == b"PING":  # PONG carries the ping's context back
                    context = bytes(data[7:]) if len(data) > 7 else b""
                    self._send_all(_frame(_command(b"PONG", context), True), deadline)
                elif _is_error(data):
                    raise LinkDown("the sidecar sent a ZMTP ERROR and closes the link")
            elif not flags & _MORE:  # a part of a multi-part message: not ours, skipped
                return data

    def _next_frame(self, deadline: float) -> tuple[int, bytes | bytearray] | None:
        while True:
            have = self.end - self.start
            if have >= 2:
                flags = self.buf[self.start]
                head = 9 if flags & _LONG else 2
                if have >= head:
                    size = (_LONG_HEAD.unpack_from(self.buf, self.start)[1] if head == 9
                            else self.buf[self.start + 1])
                    if head + size > len(self.buf):
                        large = self._large(head, size, deadline)
                        return None if large is None else (flags, large)
                    if have >= head + size:
                        at = self.start + head
                        self.start = at + size
                        return flags, bytes(self.buf[at:at + size])
            if not self._await_bytes(deadline):
                return None

    def _large(self, head: int, size: int, deadline: float) -> bytearray | None:
        """A frame larger than the scratch buffer: read into one buffer of its own size."""
        out = bytearray(size)
        target = memoryview(out)
        have = self.end - self.start - head
        target[:have] = self.view[self.start + head:self.end]
        self.start = self.end = 0
        while have < size:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller.poll(int(left * 1000) + 1):
                return None
            try:
                got = self.sock.recv_into(target[have:])  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise LinkDown(exc.strerror or type(exc).__name__) from None
            if not got:
                raise LinkDown("the sidecar closed the connection")
            have += got
        return out
