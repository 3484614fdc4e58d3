"""A worker's states as the pool names them, and which of them count as ready.

Owns: ``WorkerState`` and ``READY_STATES`` (a worker that serves or is about to: idle, busy, or
answering a probe), the one definition the pool, readiness, the dashboard's cards and the
metrics read. Pure: no imports from the product, so views in the HTTP thread may import it.
Must not touch: a worker (``sidecar.pool.worker_handle``), decisions about one
(``sidecar.pool.local``).
"""

from __future__ import annotations

from enum import StrEnum


class WorkerState(StrEnum):
    """A worker's state; a ``str`` (its value), so snapshots and logs show ``"busy"``."""
    STARTING = "starting"   # spawned, its ready message not yet read
    IDLE = "idle"           # ready, no call
    BUSY = "busy"           # running a user call
    CHECKING = "checking"   # answering a probe (ping, bench) from the watchdog
    STOPPING = "stopping"   # out of service: draining, killed or exited


STARTING, IDLE, BUSY, CHECKING, STOPPING = WorkerState
STATES = tuple(WorkerState)
# Ready: serving a call, free for one, or answering a probe (back to idle after it). A str is in
# it by value ("idle" in READY_STATES), so snapshots' plain strings are tested the same way.
READY_STATES = frozenset({IDLE, BUSY, CHECKING})
