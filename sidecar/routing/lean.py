"""The lean path: the common call handed to the primary pool as one object, answered by one sink.

Data flow (the sidecar's loop thread)::

    Service.dispatch (authenticated, valid, not held, no `pool`, not routed)
      -> Lane.submit: the primary's breaker CLOSED and an idle worker?
           yes: one LeanCall -> Pool.submit                     (no Attempt, Permit, closures)
                reply -> LeanCall.answered: what FallbackChain.attempt_answered does for a first
                         attempt (quarantine, breaker record, served, "via")
                      -> LeanCall.deliver: what the history closure, MeteredCall and AuditEntry
                         do (a ring slot, the metrics' numbers, the audit line), then the reply
                a fall-through outcome (overloaded, unavailable: the primary could not serve
                after all) -> the chain takes over as if its first Attempt had answered
           no:  MeteredCall + AuditEntry + history + FallbackChain.submit  (the full path)

Owns: which calls take the lean path, and doing for them exactly what the full path does,
observably the same (reply bytes, breaker records and transitions, quarantine reports, chain
counters, metrics numbers, history rows, audit lines). Must not touch: admission (the service),
the pool's internals (it only ``submit``s), the breaker's state machine (it records through
``CircuitBreaker.record_at``), the chain's fall-through logic (handed to it unchanged).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from bridge import protocol
from bridge.breaker import BreakerState, Permit
from bridge.codec import extend_map_encoded
from sidecar.observability.diagnostics import reply_worker
from sidecar.observability.metrics import MeteredCall
from sidecar.pool.call import Call
from sidecar.pool.local import Pool
from sidecar.routing.chain import RAN_TO_ITS_END, FallbackChain
from sidecar.routing.strategies import Attempt, PoolStrategy


class Lane:
    """Routes one admitted execute/call: the lean path when the primary can serve it now,
    else the full path (``MeteredCall`` through the ``FallbackChain``)."""

    def __init__(self, chain: FallbackChain, metrics: Any, history: Any, audit: Any,
                 clock: Callable[[], float]) -> None:
        self.chain = chain
        self.metrics = metrics
        self.history = history  # sidecar.observability.diagnostics.CallHistory
        self.audit = audit
        self.clock = clock
        self.route = chain.default_route
        strategy = chain.strategies[self.route[0]]
        self.name = strategy.name
        self.via = chain.via_tails[self.route[0]]
        self.breaker = strategy.breaker
        # Only a local pool behind a breaker: a Dask pool or a direct first strategy never
        # takes it (their answers may need what only the chain's Attempt carries).
        self.pool: Pool | None = (strategy.pool if isinstance(strategy, PoolStrategy)
                                  and isinstance(strategy.pool, Pool)
                                  and self.breaker is not None else None)
        self.taken = 0  # calls that took the lean path (tests, docs/performance.md)

    def submit(self, op: str, rid: Any, payload: bytes, request: dict[str, Any], timeout: float,
               reply: Callable[[bytes], None], peer: str, pool: str | None) -> None:
        """An admitted execute/call (``pool`` checked by the service): answered exactly once."""
        primary = self.pool
        if (pool is None and primary is not None and primary.idle and not primary.closing
                and request.get("routed") is None):
            generation = self.breaker.closed_generation()
            if generation >= 0:
                self.taken += 1
                primary.submit(LeanCall(self, op, rid, payload, timeout, reply, self.clock(),
                                        request, peer, generation))
                return
        call = MeteredCall(self.metrics, op, rid, payload, timeout, reply, self.clock(), pool)
        call.audited = self.audit.enabled and self.audit.entry(request, peer)  # when answered
        self.history.track(request, call)  # diag history: op, outcome, worker
        self.chain.submit(call, pool)

    def hand_over(self, call: LeanCall, data: bytes) -> None:
        """The primary answered a fall-through kind: the chain goes on from there, as if the
        call had come to it and its first Attempt had answered so. ``call`` stays answered
        (the pool may still hold it, as it would hold an Attempt); the chain answers a copy."""
        chain, outcome = self.chain, call.outcome
        caller = copy.copy(call)  # the caller's part, not answered yet
        caller.done, caller.outcome, caller.timer = False, None, None
        caller.sink = caller.deliver
        attempt = Attempt(chain, caller, self.route, 0, [], call.accepted_at)
        attempt.permit = Permit(self.breaker, call.generation, BreakerState.CLOSED)
        attempt.done, attempt.outcome = True, outcome
        chain.attempt_answered(attempt, data, outcome)


class LeanCall(Call):
    """The caller's call and its primary attempt in one: submitted to the primary pool itself."""

    __slots__ = ("lane", "op", "reply", "peer", "what", "wall", "generation", "audited")

    def __init__(self, lane: Lane, op: str, rid: Any, payload: bytes, timeout: float,
                 reply: Callable[[bytes], None], now: float, request: dict[str, Any],
                 peer: str, generation: int) -> None:
        # Call.__init__'s fields, set here (one frame less per call)
        self.rid = rid
        self.payload = payload
        self.timeout = timeout
        self.accepted_at = now
        self.deadline = now + timeout
        self.sink = self.answered
        self.timer = None
        self.started_at = 0.0
        self.done = False
        self.outcome = None
        self.lane = lane
        self.op = op
        self.reply = reply
        self.peer = peer
        self.what = request.get("target") if op == "call" else request.get("code")
        self.wall = time.time()
        self.generation = generation
        self.audited = lane.audit.enabled

    def answered(self, data: bytes) -> None:
        """The pool's answer (``outcome`` set): the chain's part, then ``deliver``."""
        lane = self.lane
        chain = lane.chain
        outcome = self.outcome
        if outcome in chain.fall_through:
            lane.hand_over(self, data)
            return
        counted = outcome != protocol.CRASHED or chain.record_crash(self)
        quarantine = chain.quarantine
        if outcome in RAN_TO_ITS_END and quarantine and quarantine.tracking:
            chain.record_run(self)
        lane.breaker.record_at(self.generation, outcome, counted)
        if outcome is None:
            chain.served[lane.name] += 1
        self.deliver(extend_map_encoded(data, 1, lane.via))  # what the caller's answer sends

    def deliver(self, data: bytes) -> None:
        """The caller's sink: the history row, the metrics, the audit line, then the reply."""
        lane = self.lane
        outcome, op, what = self.outcome, self.op, self.what
        lane.history.calls.append((self.wall, op, what if op == "call" else (what or "")[:400],
                                   self.accepted_at, lane.clock(), outcome,
                                   reply_worker(data, outcome)))
        now = lane.metrics.observe_answer(op, outcome, self.accepted_at, len(data), "primary")
        if self.audited:  # the line AuditEntry.finish writes (no pool, not routed)
            lane.audit.call_answered(outcome, now - self.accepted_at, self.peer, op, what)
        self.reply(data)
