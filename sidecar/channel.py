"""Framing of the sidecar <-> worker pipes: a 4-byte big-endian length, then one msgpack map.

Owns: cutting a byte stream into frames and writing frames, in time linear in their size (a
large frame is read into one buffer of its announced length, written from memoryviews that
advance an offset; nothing is ever re-joined or re-sliced). Must not touch: what a frame means
(the pool and the worker decide that) or processes.
"""

from __future__ import annotations

import os
import struct
from collections import deque

HEADER = struct.Struct(">I")

SCRATCH = 1 << 16  # the reader's buffer for headers and small frames (one pipe's worth)
READ_BUDGET = 4 << 20  # bytes one ``feed()`` takes at most: about 1 ms of copying per turn
WRITE_BUDGET = 4 << 20  # bytes one ``OutBuffer.flush()`` hands the kernel at most


class FrameTooLarge(Exception):
    """The peer announced a frame above the agreed limit: the stream cannot be trusted."""

    def __init__(self, message: str, size: int = 0) -> None:
        super().__init__(message)
        self.size = size  # the announced length
        self.frames: list[bytes | bytearray] = []  # complete frames read before it


def encode_frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload



def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame, blocking until it is all written (pipes may take it in pieces).

    The header and the payload go out in one ``writev``; the payload is never copied."""
    views = [memoryview(HEADER.pack(len(payload))), memoryview(payload).cast("B")]
    while views:
        written = os.writev(fd, views)
        _advance(views, written)


def _advance(views: list[memoryview] | deque[memoryview], written: int) -> None:
    """Drop ``written`` bytes from the front of ``views`` (views of views: no copies)."""
    while written and views:
        first = views[0]
        if written >= len(first):
            written -= len(first)
            if isinstance(views, deque):
                views.popleft()
            else:
                del views[0]
        else:
            views[0] = first[written:]
            written = 0
    while views and not len(views[0]):
        if isinstance(views, deque):
            views.popleft()
        else:
            del views[0]


def read_exact(fd: int, n: int) -> bytearray | bytes | None:
    """Blocking read of exactly ``n`` bytes into one buffer of that size; None on EOF."""
    if n <= SCRATCH:
        chunk = os.read(fd, n)
        if len(chunk) == n:
            return chunk
        if not chunk:
            return None
        buf = bytearray(n)
        buf[:len(chunk)] = chunk
        got = len(chunk)
    else:
        buf, got = bytearray(n), 0
    view = memoryview(buf)
    while got < n:
        count = os.readv(fd, [view[got:]])
        if not count:
            return None
        got += count
    view.release()
    return buf


def read_frame(fd: int, max_size: int) -> bytearray | bytes | None:
    """Blocking read of one frame (the worker's side); None on EOF."""
    head = read_exact(fd, 4)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > max_size:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {max_size}")
    return read_exact(fd, size) if size else b""


class FrameReader:
    """Non-blocking reassembly of frames from a pipe (the sidecar's side).

    ``feed()`` reads what is available (at most ``budget`` bytes: the loop calls again while
    the pipe stays readable, so one large frame never holds the loop for long) and returns the
    complete frames; ``eof`` turns true when the writer is gone. Small frames are cut out of a
    fixed scratch buffer; a frame larger than what arrived is read, by ``readv``, straight into
    a ``bytearray`` of its announced length, which is handed out as it is. ``copied`` counts the
    bytes copied in user space (tests check it stays linear).
    """

    __slots__ = ("fd", "max_size", "eof", "budget", "copied", "_scratch", "_head", "_body",
                 "_body_view", "_filled")

    def __init__(self, fd: int, max_size: int, budget: int = READ_BUDGET) -> None:
        self.fd = fd
        self.max_size = max_size
        self.eof = False
        self.budget = budget
        self.copied = 0
        self._scratch = memoryview(bytearray(SCRATCH))
        self._head = b""  # the first bytes of a header cut by the end of a read
        self._body: bytearray | None = None  # the large frame being filled
        self._body_view: memoryview | None = None
        self._filled = 0

    def feed(self) -> list[bytes | bytearray] | None:
        """Complete frames read now (maybe none); None when nothing could be read."""
        frames: list[bytes | bytearray] = []
        left = self.budget
        read_any = False
        while left > 0:
            body_view = self._body_view
            if body_view is None:  # the common case: no generator, one len (the lean path)
                buffers = [self._scratch]
                room = SCRATCH
            else:  # the frame's rest (at most the budget), then headers and small frames
                missing = len(body_view) - self._filled
                buffers = [body_view[self._filled:self._filled + min(missing, left)]]
                room = len(buffers[0])
                if missing <= left:
                    buffers.append(self._scratch)
                    room += SCRATCH
            try:
                count = os.readv(self.fd, buffers)
            except BlockingIOError:
                break
            except OSError:
                count = 0
            if not count:
                self.eof = True
                return frames
            read_any = True
            left -= count
            rest = count
            if body_view is not None:
                taken = min(count, len(body_view) - self._filled)
                self._filled += taken
                rest -= taken
                if self._filled == len(body_view):
                    frames.append(self._finish_body())
            if rest:
                try:
                    self._cut(rest, frames)
                except FrameTooLarge as exc:
                    exc.frames = frames  # the complete ones before it: still to be answered
                    raise
            if count < room:
                break  # the pipe is empty for now
        return frames if read_any else None

    def _finish_body(self) -> bytearray:
        body = self._body
        assert body is not None and self._body_view is not None
        self._body_view.release()
        self._body = self._body_view = None
        self._filled = 0
        return body

    def _cut(self, count: int, frames: list[bytes | bytearray]) -> None:
        """Frames out of the first ``count`` bytes of the scratch buffer."""
        data = self._scratch
        pos = 0
        if self._head:
            need = 4 - len(self._head)
            self._head += bytes(data[:min(need, count)])
            pos = min(need, count)
            if len(self._head) < 4:
                return
            (size,) = HEADER.unpack(self._head)
            self._head = b""
            pos = self._start(size, count, pos, frames)
        while count - pos >= 4:
            (size,) = HEADER.unpack_from(data, pos)
            pos = self._start(size, count, pos + 4, frames)
        if pos < count:
            self._head = bytes(data[pos:count])
            self.copied += count - pos

    def _start(self, size: int, count: int, pos: int, frames: list[bytes | bytearray]) -> int:
        if size > self.max_size:
            raise FrameTooLarge(f"worker sent a frame of {size} bytes, limit {self.max_size}",
                                size)
        have = count - pos
        if have >= size:
            frames.append(bytes(self._scratch[pos:pos + size]))
            self.copied += size
            return pos + size
        body = bytearray(size)
        body[:have] = self._scratch[pos:count]
        self.copied += have
        self._body, self._body_view, self._filled = body, memoryview(body), have
        return count


class OutBuffer:
    """Frames waiting for a non-blocking fd: memoryviews whose offset advances on each
    partial write (``writev``, at most ``budget`` bytes per ``flush()``); never re-sliced."""

    __slots__ = ("fd", "views", "budget", "pending")

    def __init__(self, fd: int, budget: int = WRITE_BUDGET) -> None:
        self.fd = fd
        self.views: deque[memoryview] = deque()
        self.budget = budget
        self.pending = 0  # bytes queued, not yet taken by the kernel

    def __bool__(self) -> bool:
        return self.pending > 0

    def add_frame(self, payload: bytes | bytearray | memoryview) -> None:
        header = memoryview(HEADER.pack(len(payload)))
        body = memoryview(payload).cast("B")
        self.views.append(header)
        if len(body):
            self.views.append(body)
        self.pending += len(header) + len(body)

    def send(self, payload: bytes | bytearray | memoryview) -> bool:
        """One frame, written now as far as the fd takes it; True when it is all out (the
        common case, nothing waiting: one ``writev``, nothing queued). What is left waits
        for ``flush()``. Raises ``OSError`` (nothing queued then)."""
        if self.pending:
            self.add_frame(payload)
            return False
        size = len(payload)
        try:
            written = os.writev(self.fd, (HEADER.pack(size), payload))
        except BlockingIOError:
            written = 0
        if written == size + 4:
            return True
        self.add_frame(payload)
        _advance(self.views, written)
        self.pending -= written
        return False

    def flush(self) -> bool:
        """Write what the fd takes now; True when everything is out. Raises ``OSError``."""
        views = self.views
        left = self.budget
        while views and left > 0:
            batch, size = [], 0
            for view in views:
                if size >= left or len(batch) >= 64:
                    break
                if size + len(view) > left:
                    view = view[:left - size]
                batch.append(view)
                size += len(view)
            try:
                written = os.writev(self.fd, batch)
            except BlockingIOError:
                return False
            _advance(views, written)
            self.pending -= written
            left -= written
            if written < size:
                return False
        return not views

    def clear(self) -> None:
        self.views.clear()
        self.pending = 0
