"""The worker protocol's messages, both ends: what the pool and a worker write to each other.

Owns: the ops a worker understands from the pool (``stop``, ``ping``, ``bench``,
``tracemalloc``; a call is any other request), the messages a worker sends of its own (``ready``
once, ``left_behind`` before a reply when a call left threads or children behind) and the
encoded prefix by which the pool tells ``left_behind`` from a reply without decoding
(``LEFT_BEHIND_PREFIX``). Imported by ``sidecar.worker.main`` and ``sidecar.worker.isolation``
(the worker's end) and by ``sidecar.pool`` (the sidecar's end). Must not touch: framing
(``sidecar.channel``), the values' codec (``bridge.codec``), what either end does with a message.
docs/protocol.md describes the frames.
"""

from __future__ import annotations

from typing import Any

from bridge.codec import packb

READY = "ready"
LEFT_BEHIND = "left_behind"
STOP, PING, BENCH, TRACEMALLOC = "stop", "ping", "bench", "tracemalloc"


def ready(pid: int, preload_errors: list[str]) -> dict[str, Any]:
    """A worker's first message: it serves (``preload_errors``: what it could not import)."""
    return {"op": READY, "pid": pid, "preload_errors": preload_errors}


def left_behind(reasons: list[str]) -> dict[str, Any]:
    """What a call left that cannot be undone (``sidecar.worker.isolation``), sent before the
    call's reply so the pool knows before it could send another call."""
    return {"op": LEFT_BEHIND, "reasons": reasons}


# ``left_behind(...)`` as ``packb`` writes it starts with these bytes (a fixmap of two, the key
# "op", the value "left_behind"); a reply (a map whose first key is "ok") never does. The pool
# tests each frame against them: no decode for a reply (tests/unit/worker/test_protocol.py).
LEFT_BEHIND_PREFIX = b"\x82\xa2op" + packb(LEFT_BEHIND)
