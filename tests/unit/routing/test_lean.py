"""Covers: sidecar.routing.lean, sidecar.routing.chain, sidecar.observability.metrics,
bridge.breaker.

The lean path against the full path. Twins (each a real ``Pool`` on fake processes, the real
fallback chain, breaker, quarantine, metrics, call history and audit queue, on a fake clock) are
given the same calls; one routes them through ``Lane`` as the service does, the other is made to
take the full path every time (``MeteredCall`` through the chain). They must end with the same
replies, breaker and quarantine state, chain counters, metrics numbers, history rows and audit
lines; and the lean path must not be taken when the primary cannot serve a call at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from bridge import protocol
from bridge.breaker import BreakerConfig, BreakerState, CircuitBreaker
from bridge.codec import pack_raw, unpack_raw
from sidecar.observability.audit import AuditLog
from sidecar.observability.diagnostics import CallHistory
from sidecar.observability.metrics import Metrics
from sidecar.routing.chain import FallbackChain
from sidecar.routing.lean import Lane
from sidecar.routing.quarantine import Quarantine
from sidecar.routing.strategies import PoolStrategy

from ..pool_doubles import PoolHarness, reply_ok
from .test_chain import HoldingStrategy, ScriptedStrategy

PEER = "unix:pid=1,uid=0"
# A worker's success in the layout the pool splices undecoded (bridge.passthrough).
SPLICED_OK = pack_raw({"ok": True, "ms": 1.0, "cpu": 0.5, "value": 3, "stdout": "",
                       "stderr": ""})
USER_ERROR = pack_raw({"ok": False, "error": protocol.error(protocol.USER, "boom",
                                                            type="ValueError")})
BREAKER = BreakerConfig(failure_threshold=2, window_size=4, minimum_calls=2, open_timeout=10.0,
                        half_open_max_probes=1, success_threshold=1)


class Twin:
    """One sidecar's routing insides; ``lean=False``: every call takes the full path."""

    def __init__(self, tmp_path: Any, name: str, *, lean: bool, fallback: bool = False,
                 pool_size: int = 1) -> None:
        folder = tmp_path / name
        folder.mkdir()
        self.h = h = PoolHarness(folder, initial_size=pool_size, min_size=1, max_size=4)
        h.pool.start()
        h.ready_all()
        primary = PoolStrategy("primary", h.pool)
        primary.breaker = CircuitBreaker(BREAKER, clock=h.clock, name="primary")
        self.breaker = primary.breaker
        strategies = [primary, *([ScriptedStrategy("direct")] if fallback else [])]
        self.quarantine = Quarantine(clock=h.clock)
        self.chain = FallbackChain(h.loop, strategies, quarantine=self.quarantine)
        self.metrics = Metrics(h.clock)
        self.history = CallHistory(h.clock)
        self.audit = AuditLog(None)
        self.audit.enabled = True  # lines queued (no writer thread): the test reads them
        self.lane = Lane(self.chain, self.metrics, self.history, self.audit, h.clock)
        if not lean:
            self.lane.pool = None
        self.replies: list[bytes] = []

    def submit(self, rid: int, **members: Any) -> None:
        request = {"v": 1, "id": rid, "op": "call", "token": "t", "target": "operator:add",
                   "args": [rid, 2], **members}
        self.lane.submit(request["op"], rid, pack_raw(request), request,
                         request.get("timeout") or 30.0, self.replies.append, PEER,
                         request.get("pool"))

    def running(self) -> Any:
        return next(w for w in self.h.pool.workers.values() if w.call is not None)

    def state(self) -> dict[str, Any]:
        """Everything the two paths must agree on (wall-clock times aside)."""
        m, pool = self.metrics, self.h.pool
        return {"replies": [_no_pids(unpack_raw(r)) for r in self.replies],
                "calls": m.calls, "pool_calls": m.pool_calls,
                "duration": m.duration.copy(), "output_size": m.output_size.copy(),
                "queue_wait": m.queue_wait.copy(), "minutes": [x[2:] for x in m.minutes],
                "history": [row[1:] for row in self.history.calls],
                "audit": [line[1:] for line in self.audit.pending],
                "breaker": self.breaker.snapshot(), "chain": self.chain.snapshot(),
                "events": self.chain.events, "quarantine": self.quarantine.snapshot(),
                "pool": {"counters": pool.counters, "errors": pool.errors_by_kind}}

    def close(self) -> None:
        self.h.close()


def _no_pids(reply: dict[str, Any]) -> dict[str, Any]:
    """The fake processes' pids differ between the twins (one counter for all)."""
    error = reply.get("error")
    if isinstance(error, dict):
        error.pop("pid", None)
        error["message"] = re.sub(r"pid \d+", "pid N", error["message"])
    return reply


def answer(frame: bytes) -> Callable[[Twin], None]:
    return lambda t: t.running().process.send(frame)


def crash(t: Twin) -> None:
    t.running().process.die(-9)
    t.h.ready_all()  # the replacement gets ready


def time_out(t: Twin) -> None:
    t.h.advance(31.0)  # past the call's 30 s: its stack taken, the worker killed
    t.h.end_killed()
    t.h.ready_all()


def shut_down(t: Twin) -> None:
    t.h.pool.terminate(0.0)  # a running call is answered `unavailable`: a fall-through kind


# Each step: what the worker (or time) does with the call just submitted.
SCRIPT = [answer(SPLICED_OK), answer(reply_ok(5)), answer(USER_ERROR), crash, answer(SPLICED_OK),
          time_out, crash, answer(SPLICED_OK), answer(SPLICED_OK)]


@pytest.fixture
def twins(tmp_path):
    made: list[Twin] = []

    def build(**kwargs: Any) -> tuple[Twin, Twin]:
        lean = Twin(tmp_path, f"lean{len(made)}", lean=True, **kwargs)
        full = Twin(tmp_path, f"full{len(made)}", lean=False, **kwargs)
        made.extend((lean, full))
        return lean, full

    yield build
    for twin in made:
        twin.close()


def run_both(lean: Twin, full: Twin, rid: int, step: Callable[[Twin], None],
             **members: Any) -> None:
    for twin in (lean, full):
        twin.submit(rid, **members)
        if any(w.call is not None for w in twin.h.pool.workers.values()):
            step(twin)


def test_the_same_calls_end_the_same_on_both_paths(twins):
    lean, full = twins()
    for rid, step in enumerate(SCRIPT, 1):
        run_both(lean, full, rid, step)
        assert lean.state() == full.state(), f"after call {rid}"
        lean.h.advance(0.5)
        full.h.advance(0.5)
    assert 0 < lean.lane.taken < len(SCRIPT) and full.lane.taken == 0
    state = lean.state()
    kinds = [r.get("error", {}).get("kind") for r in state["replies"]]
    assert kinds == [None, None, "user", "crashed", None, "timeout", "circuit_open",
                     "circuit_open", "circuit_open"]  # 2 failures of 4 opened the breaker
    assert state["breaker"]["state"] == "open" and state["replies"][0]["via"] == "primary"
    assert [row[0] for row in state["audit"]] == kinds
    assert state["history"][0][:2] == ("call", "operator:add")


def test_a_breaker_that_moved_on_is_recorded_alike(twins):
    """Half-open after the open timeout: probes (full path) close it, then the lean path."""
    lean, full = twins()
    for rid, step in enumerate([crash, crash], 1):
        run_both(lean, full, rid, step)
    for twin in (lean, full):
        twin.h.advance(11.0)
    assert lean.breaker.state is BreakerState.HALF_OPEN
    taken = lean.lane.taken
    run_both(lean, full, 3, answer(SPLICED_OK))  # the probe: not on the lean path
    assert lean.lane.taken == taken and lean.breaker.state is BreakerState.CLOSED
    run_both(lean, full, 4, answer(SPLICED_OK))  # closed again: lean
    assert lean.lane.taken == taken + 1
    assert lean.state() == full.state()


@pytest.mark.parametrize("fallback", [True, False])
def test_a_fall_through_answer_hands_the_call_to_the_chain(twins, fallback):
    lean, full = twins(fallback=fallback)
    run_both(lean, full, 1, shut_down)
    assert lean.lane.taken == 1
    assert lean.state() == full.state()
    [reply] = lean.state()["replies"]
    if fallback:  # the next strategy served it, as it would have from the chain
        assert reply["ok"] and reply["via"] == "direct"
        assert lean.chain.fell_through == {"primary": 1, "direct": 0}
    else:  # a chain of one: the primary's answer as it is
        assert reply["error"]["kind"] == "unavailable" and reply["via"] == "primary"


def test_every_call_is_answered_once(twins):
    lean, _ = twins()
    lean.submit(1)
    worker = lean.running()
    worker.process.send(SPLICED_OK)
    worker.process.send(SPLICED_OK)  # a stale frame: the call was answered already
    assert len(lean.replies) == 1 and lean.lane.taken == 1


@pytest.mark.parametrize("why", ["forced open", "open", "no idle worker", "routed", "pool",
                                 "closing"])
def test_the_lean_path_is_not_taken_when_the_primary_cannot_serve_at_once(twins, why):
    lean, full = twins()
    members: dict[str, Any] = {}
    for twin in (lean, full):
        if why == "forced open":
            twin.breaker.force_open()
        elif why == "open":
            for _ in range(2):
                twin.breaker.try_acquire().record(protocol.CRASHED)
        elif why == "no idle worker":
            twin.submit(99)  # takes the only worker
        elif why == "closing":
            twin.h.pool.begin_shutdown()
    if why == "routed":
        members = {"routed": {"route": "gateway", "project": "p"}}
    elif why == "pool":
        members = {"pool": "primary"}
    taken = lean.lane.taken
    for twin in (lean, full):
        twin.submit(1, **members)
    assert lean.lane.taken == taken
    assert lean.state() == full.state()


def test_only_a_local_pool_first_behind_a_breaker_takes_it(tmp_path):
    loop = PoolHarness(tmp_path).loop
    chain = FallbackChain(loop, [ScriptedStrategy("direct")])
    lane = Lane(chain, Metrics(), CallHistory(loop.clock), AuditLog(None), loop.clock)
    assert lane.pool is None
    replies: list[bytes] = []
    request = {"op": "call", "target": "m:f"}
    lane.submit("call", 1, pack_raw(request), request, 5.0, replies.append, PEER, None)
    assert unpack_raw(replies[0])["via"] == "direct" and lane.taken == 0


def test_a_run_to_its_end_forgets_the_same_requests_crash_on_both_paths(twins):
    lean, full = twins()
    run_both(lean, full, 1, crash, args=[7, 7])
    assert lean.quarantine.tracking and full.quarantine.tracking
    run_both(lean, full, 2, answer(SPLICED_OK), args=[7, 7])  # the same request, run to its end
    assert not lean.quarantine.tracking and lean.lane.taken == 2
    assert lean.state() == full.state()


def test_a_handed_over_call_is_answered_once_by_the_chain_not_by_the_pool(tmp_path):
    twin = Twin(tmp_path, "held", lean=True)
    held = HoldingStrategy("direct")
    twin.chain.strategies.append(held)  # primary -> direct, direct keeping its attempt
    twin.chain.via_tails.append(pack_raw("via") + pack_raw("direct"))
    twin.chain.served["direct"] = twin.chain.fell_through["direct"] = 0
    twin.chain.default_route = twin.lane.route = (0, 1)
    try:
        twin.submit(1)
        original = twin.running().call
        shut_down(twin)  # the primary answers `unavailable`: handed to the chain
        assert twin.replies == [] and len(held.seen) == 1
        assert original.done and not original.fail(protocol.CRASHED, "a late word of the pool")
        held.seen[0].answer(SPLICED_OK)
        [reply] = [unpack_raw(r) for r in twin.replies]
        assert reply["via"] == "direct" and reply["value"] == 3
        assert [row[5] for row in twin.history.calls] == [None]  # one row, a success
    finally:
        twin.close()
