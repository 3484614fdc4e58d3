"""Pipe descriptors: their buffer size, what sits unread in one, a copy far from low numbers.

Offers: ``widen_pipe(fd, size)`` (a larger buffer: fewer, larger reads and writes for big
frames; the kernel may refuse, which only costs speed), ``pending_bytes(fd)`` (what was written
and not read yet: the pool's test that a worker never read its call) and ``dup_above(fd, low)``
(a close-on-exec copy numbered at least ``low``: the worker's channel, away from the
descriptors user code is likely to close or reuse).

Linux: ``fcntl(F_SETPIPE_SZ)`` (capped by ``/proc/sys/fs/pipe-max-size``),
``ioctl(FIONREAD)``, ``fcntl(F_DUPFD_CLOEXEC)``.
Windows: ``CreatePipe``/``CreateNamedPipe``'s buffer size argument, ``PeekNamedPipe``'s
``lpTotalBytesAvail``, ``DuplicateHandle`` (non-inheritable); or a local socket pair, where
``SO_SNDBUF``/``SO_RCVBUF`` and ``ioctlsocket(FIONREAD)`` do the same.
"""

from __future__ import annotations

import fcntl
import struct
import termios

PIPE_SIZE = 1 << 20


def widen_pipe(fd: int, size: int = PIPE_SIZE) -> bool:
    """Ask for a pipe buffer of ``size`` bytes; False when the kernel refused."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (OSError, AttributeError):
        return False
    return True


def pending_bytes(fd: int) -> int:
    """Bytes written to the pipe of ``fd`` and not read yet (raises ``OSError``)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def dup_above(fd: int, low: int) -> int:
    """A close-on-exec copy of ``fd`` numbered ``low`` or above."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
