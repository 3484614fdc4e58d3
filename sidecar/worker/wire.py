"""The worker's ends of its two pipes: a request frame in one ``read``, a reply in one ``write``.

The frames are ``sidecar.channel``'s (a 4-byte big-endian length, then the payload); this is the
blocking, one-call-at-a-time side of them, cut to the fewest system calls a trivial call can
take (a worker pays every one of them on every call, with caches the sidecar just made cold):

- ``Inbox.read_frame``: one ``read`` of up to 64 KiB takes the header and a small frame
  together (``sidecar.channel.read_frame`` takes two). Bytes past the frame (the pool wrote
  another frame behind it) wait for the next ``read_frame``; a large frame's rest is read
  straight into one buffer of its announced length, never past it.
- ``write_frame``: a small reply goes out as one joined ``write``; a large one as one ``writev``
  of the header and a view of the payload (never copied).

Owns: those two pipe ends' system calls. Must not touch: what a frame means
(``sidecar.worker.main``, ``sidecar.worker.protocol``), the framing rules (``sidecar.channel``).
"""

from __future__ import annotations

import os

from sidecar.channel import HEADER, SCRATCH, FrameTooLarge
from sidecar.channel import write_frame as write_large

SMALL = 1 << 16  # a reply up to this size is joined to its header: one copy, one write


class Inbox:
    """Request frames from a blocking pipe, one ``read`` each when they are small."""

    __slots__ = ("fd", "max_size", "pending")

    def __init__(self, fd: int, max_size: int) -> None:
        self.fd = fd
        self.max_size = max_size
        self.pending = b""  # bytes read past the last frame

    def read_frame(self) -> bytes | bytearray | None:
        """The next frame's payload; None on EOF (a frame cut by EOF included)."""
        data = self.pending
        self.pending = b""
        while len(data) < 4:
            chunk = os.read(self.fd, SCRATCH)
            if not chunk:
                return None
            data = data + chunk if data else chunk
        (size,) = HEADER.unpack_from(data)
        if size > self.max_size:
            raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {self.max_size}")
        end = 4 + size
        if len(data) >= end:
            if len(data) > end:
                self.pending = data[end:]
            return data[4:end]
        return self._rest(data, size)

    def _rest(self, data: bytes, size: int) -> bytearray | None:
        """A frame longer than what the first read brought: the rest into one buffer."""
        body = bytearray(size)
        got = len(data) - 4
        body[:got] = memoryview(data)[4:]
        view = memoryview(body)
        try:
            while got < size:
                count = os.readv(self.fd, [view[got:]])
                if not count:
                    return None
                got += count
        finally:
            view.release()
        return body


def write_frame(fd: int, payload: bytes | bytearray | memoryview) -> None:
    """Write one frame, blocking until all of it is written: one system call when small."""
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size > SMALL:
        write_large(fd, payload)
        return
    frame = HEADER.pack(size) + payload
    written = os.write(fd, frame)
    if written < len(frame):  # a pipe may take a write in pieces (a signal, a full pipe)
        view = memoryview(frame)
        while written < len(frame):
            written += os.write(fd, view[written:])
