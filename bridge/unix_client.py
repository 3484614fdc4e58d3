"""The client's side of the Unix-socket front (``Client("unix:PATH")``): one connection per
calling thread and path, a 4-byte big-endian length then one msgpack envelope each way.

Owns: connecting (within ``connect_timeout``), sending a request, reading frames until the
reply that names it (a stale reply to an earlier call on this connection is stepped over), the
deadline of that wait, and telling what a failure means for the call. Must not touch: request
ids, error kinds and failover (``bridge.client`` decides), anything on the sidecar's side.

What a failure means: a Unix socket is in-kernel, so a send to a connection the sidecar has
closed fails at once (``EPIPE``) and the sidecar never dispatches a frame it did not receive
whole: such a request was not delivered, and is sent again once on a fresh connection (a
sidecar restarted since this thread's last call). A connection lost while the reply is awaited
is ``Unavailable`` with "its effects are unknown"; no reply by the deadline drops the
connection (a late reply can never be taken for the next call's) and is ``Unavailable`` too.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from bridge import codec
from bridge.protocol import InternalError, Unavailable

HEADER = struct.Struct(">I")
CHUNK = 1 << 16
_TIMEVAL = struct.Struct("@ll")  # struct timeval: SO_RCVTIMEO / SO_SNDTIMEO


class UnixLink:
    """One thread's connection to the sidecar at ``path`` (not thread-safe: one per thread)."""

    __slots__ = ("path", "endpoint", "connect_timeout", "sock", "buf", "timeout")

    # The socket blocks, bounded by the kernel's SO_RCVTIMEO/SO_SNDTIMEO (set only when the
    # call's wait changes): one recv and one send per call, no poll() before each.

    def __init__(self, path: str, connect_timeout: float) -> None:
        self.path = path
        self.endpoint = f"unix:{path}"
        self.connect_timeout = connect_timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()  # bytes read past the last frame
        self.timeout: float | None = None  # the socket's current timeout (set when it changes)

    def exchange(self, payload: bytes, rid: int, wait: float) -> dict[str, Any]:
        """Send ``payload``; the reply map naming ``rid`` (or an id-less error reply)."""
        deadline = time.monotonic() + wait
        self._send(payload, wait)
        while True:
            reply = codec.unpackb(self._frame(deadline, wait))
            if not isinstance(reply, dict):
                raise InternalError(f"malformed reply from the sidecar: {reply!r}")
            if reply.get("id") == rid:
                return reply
            if reply.get("id") is None and not reply.get("ok"):
                return reply  # the sidecar could not read our request at all
            # A stale reply to an earlier call on this connection: keep waiting.

    def _send(self, payload: bytes, wait: float) -> None:
        header = HEADER.pack(len(payload))
        for attempt in (1, 2):
            sock = self.sock or self._connect()
            self._arm(sock, wait)
            try:
                if len(payload) < CHUNK:
                    sock.sendall(header + payload)
                else:  # no copy of a large request
                    sock.sendall(header)
                    sock.sendall(payload)
                return
            except (BrokenPipeError, ConnectionResetError):
                # The sidecar closed this connection (it restarted, or refused an oversized
                # frame it answered first): nothing it did not read whole was dispatched.
                early = self._pending_reply()
                self.close()
                if early is not None:
                    self.buf[:0] = early
                    return
                if attempt == 2:
                    raise Unavailable(f"the sidecar at {self.endpoint} closed the connection "
                                      "before this request was delivered; is it running?",
                                      details={"sent": False}) from None
            except (TimeoutError, BlockingIOError):  # SO_SNDTIMEO: it stopped reading
                self.close()  # a frame it did not read whole is never dispatched
                raise Unavailable(f"the sidecar at {self.endpoint} did not take this request "
                                  f"within {wait:g}s; it may be frozen or overloaded",
                                  details={"sent": False}) from None

    def _pending_reply(self) -> bytes | None:
        """What the sidecar wrote before closing (its answer to an oversized frame), if any."""
        sock = self.sock
        if sock is None:
            return None
        try:
            sock.setblocking(False)
            data = bytes(self.buf) + sock.recv(CHUNK)
        except OSError:
            return None
        return data if len(data) >= HEADER.size else None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise Unavailable(f"cannot reach the sidecar at {self.endpoint} ({exc.strerror}); "
                              "is it running (`py3sidecar serve`) with python3.bridge.unix "
                              "enabled?", details={"sent": False}) from None
        except PermissionError:
            sock.close()
            raise Unavailable(f"the sidecar at {self.endpoint} serves only its own user (and "
                              "root): run this client as that user, or use its ZeroMQ front",
                              details={"sent": False}) from None
        except OSError as exc:  # a timeout (a backlog full for connect_timeout), and others
            sock.close()
            raise Unavailable(f"cannot connect to the sidecar at {self.endpoint} within "
                              f"{self.connect_timeout:g}s ({exc})",
                              details={"sent": False}) from None
        sock.settimeout(None)  # blocking: the kernel's timeouts bound each wait (_arm)
        self.sock, self.timeout = sock, None
        self.buf.clear()
        return sock

    def _arm(self, sock: socket.socket, seconds: float) -> None:
        """SO_RCVTIMEO and SO_SNDTIMEO to ``seconds`` (two setsockopt, only on a change)."""
        if seconds == self.timeout:
            return
        whole = int(seconds)
        usec = int((seconds - whole) * 1e6)
        tv = _TIMEVAL.pack(whole, usec or (0 if whole else 1))  # a zero timeval: no timeout
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self.timeout = seconds

    def _frame(self, deadline: float, wait: float) -> bytes | bytearray:
        """The next whole frame, before ``deadline``."""
        buf = self.buf
        while len(buf) < HEADER.size or len(buf) < HEADER.size + HEADER.unpack_from(buf)[0]:
            if len(buf) >= HEADER.size and HEADER.unpack_from(buf)[0] > CHUNK:
                return self._large_frame(deadline, wait)
            self._fill(deadline, wait, CHUNK)
        (size,) = HEADER.unpack_from(buf)
        end = HEADER.size + size
        frame = bytes(buf[HEADER.size:end])
        del buf[:end]
        return frame

    def _large_frame(self, deadline: float, wait: float) -> bytearray:
        """A frame larger than a chunk: read straight into a buffer of its length."""
        (size,) = HEADER.unpack_from(self.buf)
        body = bytearray(size)
        have = min(size, len(self.buf) - HEADER.size)
        body[:have] = self.buf[HEADER.size:HEADER.size + have]
        del self.buf[:HEADER.size + have]
        view = memoryview(body)
        while have < size:
            sock = self._ready(deadline, wait)
            try:
                count = sock.recv_into(view[have:])
            except (TimeoutError, BlockingIOError):
                continue  # SO_RCVTIMEO: _ready tells the deadline
            except OSError:
                count = 0
            if not count:
                self._lost()
            have += count
        return body

    def _fill(self, deadline: float, wait: float, size: int) -> None:
        sock = self._ready(deadline, wait)
        try:
            data = sock.recv(size)
        except (TimeoutError, BlockingIOError):
            return  # SO_RCVTIMEO: _ready tells the deadline
        except OSError:
            data = b""
        if not data:
            self._lost()
        self.buf += data

    def _ready(self, deadline: float, wait: float) -> socket.socket:
        """The socket, its receive timeout no longer than what is left of the wait (armed
        again only when a stale reply or a partial frame took some of it); Unavailable past
        the deadline."""
        left = deadline - time.monotonic()
        sock = self.sock
        if left <= 0.0005 or sock is None:
            self.close()  # a late reply must never be taken for the next call's
            raise Unavailable(f"no reply from the sidecar at {self.endpoint} within {wait:g}s; "
                              "it may be frozen or overloaded", details={"sent": True})
        if self.timeout is None or left < self.timeout - 0.001:
            self._arm(sock, left)
        return sock

    def _lost(self) -> None:
        self.close()
        raise Unavailable(f"the connection to the sidecar at {self.endpoint} was lost while "
                          "this call was running there; its effects are unknown",
                          details={"sent": True})

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self.buf.clear()
        self.timeout = None
        if sock is not None:
            sock.close()
