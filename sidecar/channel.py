"""Framing of the sidecar <-> worker pipes: a 4-byte big-endian length, then one msgpack map.

Owns: cutting a byte stream into frames and writing frames. Must not touch: what a frame means
(the pool and the worker decide that) or processes.
"""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct(">I")


class FrameTooLarge(Exception):
    """The peer announced a frame above the agreed limit: the stream cannot be trusted."""


def encode_frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame, blocking until it is all written (pipes may take it in pieces)."""
    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_exact(fd: int, n: int) -> bytes | None:
    """Blocking read of exactly ``n`` bytes; None on EOF."""
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_frame(fd: int, max_size: int) -> bytes | None:
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

    ``feed()`` reads what is available and returns the complete frames; ``eof`` turns true
    when the writer is gone.
    """

    __slots__ = ("fd", "max_size", "buffer", "eof")

    def __init__(self, fd: int, max_size: int) -> None:
        self.fd = fd
        self.max_size = max_size
        self.buffer = b""
        self.eof = False

    def feed(self) -> list[bytes] | None:
        """Complete frames read now (maybe none); None when nothing could be read."""
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return []
        buf = self.buffer + chunk if self.buffer else chunk
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > self.max_size:
                raise FrameTooLarge(f"worker sent a frame of {size} bytes, limit {self.max_size}")
            if end - pos - 4 < size:
                break
            frames.append(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
        self.buffer = buf[pos:] if pos < end else b""
        return frames
