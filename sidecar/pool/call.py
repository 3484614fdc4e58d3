"""One accepted request on its way to an answer: the one completion verb, ``answer``.

Owns: a call's identity, payload, timeout and deadline, its timer, the worker running it, and
the guarantee that it is answered exactly once (``answer``; ``fail`` builds an error reply and
answers with it). Must not touch: queues or workers (``sidecar.pool.local``), where the answer goes
(the ``sink`` it was built with: a front's reply, a fallback chain, a metrics wrapper).

Wrappers observe an answer by wrapping ``sink`` (``sidecar.observability.metrics.MeteredCall``, the
diagnostics history) or by building the call with a sink of their own
(``sidecar.routing.chain.Attempt``, ``sidecar.routing.lean.LeanCall``); none of them overrides
``answer``. ``outcome`` is set before
the sink runs, so a sink may read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge import protocol
from bridge.codec import pack_raw

if TYPE_CHECKING:
    from sidecar.loop import Timer

log = logging.getLogger("py3sidecar.pool")


class Call:
    """One accepted request on its way through the pool; answered exactly once."""

    __slots__ = ("rid", "payload", "timeout", "accepted_at", "deadline", "sink", "timer",
                 "started_at", "done", "outcome")

    def __init__(self, rid: Any, payload: bytes, timeout: float, sink: Callable[[bytes], None],
                 now: float) -> None:
        self.rid = rid
        self.payload = payload
        self.timeout = timeout
        self.accepted_at = now
        self.deadline = now + timeout
        self.sink = sink
        self.timer: Timer | None = None
        self.started_at = 0.0
        self.done = False
        self.outcome: str | None = None  # None = success, else the error kind

    def answer(self, data: bytes, outcome: str | None = None) -> bool:
        """The one way a call completes; False (and nothing sent) if it already was."""
        if self.done:
            return False
        self.done = True
        self.outcome = outcome
        if self.timer is not None:
            self.timer.cancel()
        try:
            self.sink(data)
        except Exception:
            log.exception("could not deliver the reply to request %r", self.rid)
        return True

    def fail(self, kind: str, message: str, **extra: Any) -> bool:
        """Answer with an error reply of ``kind`` (see ``bridge.protocol``)."""
        return self.answer(pack_raw(protocol.error_reply(self.rid, kind, message, **extra)), kind)
