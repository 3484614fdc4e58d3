"""glibc malloc tuning for large messages, applied at start in the sidecar and its workers.

Owns: two ``mallopt`` settings. Must not touch: anything else (no allocation policy of its own).

glibc serves allocations above its mmap threshold (which adapts, but never beyond 32 MiB)
with a fresh ``mmap`` and unmaps them on free, so every buffer of a 32 MiB message is
page-faulted in again, call after call: on the 2-core test machine that cost more than the
copies themselves (a 32 MiB reply: 330 ms instead of about 60). Raising the mmap threshold to
``MMAP_THRESHOLD`` and keeping up to ``TRIM_THRESHOLD`` of free heap lets the next message
reuse the pages. A 32 MiB reply passes through about five buffers of its size in the sidecar
(the frame read from the pipe, the splice, the ``via`` member, the front's send): with 96 MiB
kept, glibc gave the heap back after every such reply and the next one faulted about 24,500
pages in again, most of the sidecar's CPU for the reply (``tests/integration/
test_large_reply_pages.py``; 160 MiB was the smallest size that stopped it). The price is that
much resident memory kept after a large call (a worker that grows past
``python3.pool.memory-growth-limit`` is recycled as before).
``PY3SIDECAR_MALLOC_TUNING=0`` leaves malloc alone; ``PY3SIDECAR_MALLOC_KEEP_MIB=N`` keeps N MiB
instead (a host short of memory, or the before of a measurement); elsewhere than glibc this does
nothing. The sidecar checks the value at start (``serve`` exits 2 naming it); its workers
inherit the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 20
TRIM_THRESHOLD = 160 << 20
ENV = "PY3SIDECAR_MALLOC_TUNING"
KEEP_ENV = "PY3SIDECAR_MALLOC_KEEP_MIB"


def trim_threshold() -> int:
    """The free heap kept, bytes: ``$PY3SIDECAR_MALLOC_KEEP_MIB`` or ``TRIM_THRESHOLD``; a value
    that is not a whole number of MiB from 0 to 4096 is a ``ValueError`` naming it."""
    text = os.environ.get(KEEP_ENV, "").strip()
    if not text:
        return TRIM_THRESHOLD
    if not text.isdigit() or int(text) > 4096:
        raise ValueError(f"{KEEP_ENV}={text!r}: give the free heap to keep as a whole number "
                         "of MiB from 0 to 4096 (unset: 160)")
    return int(text) << 20


def keep_large_buffers(strict: bool = True) -> bool:
    """Apply the tuning; True when glibc accepted both settings. A bad
    ``$PY3SIDECAR_MALLOC_KEEP_MIB`` raises ``ValueError`` (``serve``), or with ``strict=False``
    (a worker: ``python3.worker.env`` may set it for the workers alone) is said on stderr, which
    is the sidecar's log, and the default is kept."""
    if os.environ.get(ENV, "1") == "0":
        return False
    try:
        trim = trim_threshold()
    except ValueError as exc:
        if strict:
            raise
        print(f"py3sidecar worker: {exc}; keeping {TRIM_THRESHOLD >> 20} MiB", file=sys.stderr)
        trim = TRIM_THRESHOLD
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, trim))
