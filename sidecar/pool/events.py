"""What a pool tells its policies: one frozen dataclass per event, and routing by type.

The pool (``sidecar.pool.local``, ``sidecar.pool.lifecycle``) and the sizer
(``sidecar.supervision.scaling``) build these and hand them to ``Pool.publish``; the watchdog,
recovery, alerts and metrics take the ones they care about through ``route`` (a dict of event type
-> handler), so a renamed or missing field is an error where it is written, not a silent
``info.get`` miss where it is read.

Owns: the pool events and their fields, ``route``. Must not touch: who publishes or what a
handler decides (the pool and the policies), processes, the wire format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args


@dataclass(frozen=True)
class WorkerSpawned:
    pool: str
    worker: int
    pid: int
    role: str


@dataclass(frozen=True)
class WorkerReady:
    pool: str
    worker: int
    pid: int
    role: str
    seconds: float  # from spawn to its ready message


@dataclass(frozen=True)
class SparePromoted:
    pool: str
    worker: int
    pid: int


@dataclass(frozen=True)
class WorkerRecycled:
    pool: str
    worker: int
    pid: int
    reason: str


@dataclass(frozen=True)
class WorkerExited:
    pool: str
    worker: int
    pid: int
    expected: bool        # the pool was stopping it (drain, kill, recycle)
    returncode: int | None
    text: str             # "signal 9 (SIGKILL) ..." / "exit code 3"
    reason: str           # why the pool stopped it, else ``text``
    during_call: bool     # it had an unanswered call when it died
    rss: int              # bytes at its last sample
    starting: bool        # it died before it was ready (a failed start)
    signal: int | None = None
    signal_name: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class SpawnFailed:
    pool: str
    message: str
    errno: int | None
    resource_exhaustion: bool  # EMFILE/ENFILE/ENOMEM/EAGAIN
    failures: int              # consecutive
    retry_in: float            # seconds until the next try


@dataclass(frozen=True)
class RestartLimit:
    pool: str
    restarts: int
    window: float


@dataclass(frozen=True)
class CallTimedOut:
    pool: str
    worker: int
    pid: int
    stack: str  # every thread's stack, "" when it could not be captured


@dataclass(frozen=True)
class MemoryHigh:
    pool: str
    worker: int
    pid: int
    rss: int


@dataclass(frozen=True)
class PoolResized:
    pool: str
    old: int
    new: int
    reason: str


PoolEvent = (WorkerSpawned | WorkerReady | SparePromoted | WorkerRecycled | WorkerExited
             | SpawnFailed | RestartLimit | CallTimedOut | MemoryHigh | PoolResized)
POOL_EVENTS: tuple[type, ...] = get_args(PoolEvent)

def route(handlers: Mapping[type, Callable[[Any], None]]) -> Callable[[object], None]:
    """A listener that hands each event to the handler for its type; other types are ignored.
    A key that is not a pool event is a programming error, caught here at wiring time."""
    for kind in handlers:
        if kind not in POOL_EVENTS:
            raise TypeError(f"{kind!r} is not a pool event (sidecar.pool.events.POOL_EVENTS)")
    table = dict(handlers)

    def listener(event: object) -> None:
        handler = table.get(type(event))
        if handler is not None:
            handler(event)

    return listener
