"""The fallback chain: circuit breakers and ordered execution strategies behind ``Service``.

Data flow (all in the sidecar's one loop thread)::

    Service.dispatch -> FallbackChain.submit(call)            the caller's Call: answered once
                          |
                          v  per strategy, in configured order, one Attempt (a Call whose answer
                          |  comes back here); attempts share the caller's deadline
       breaker.acquire() --rejected--> circuit_open (retry_after) -+
              | permit                                            |
              v                                                   |
       strategy.submit(attempt)   primary Pool | secondary Pool   |
                                  | direct (one fresh process)    |
                                  | remote (another sidecar)      |
              |                                                   |
       attempt answered -> permit.record(kind) <------------------+
              |  success or a kind that does not fall through: the caller's answer, with
              |  "via": <strategy> appended to the reply map (bytes, the value is not decoded)
              |  a fall-through kind (circuit_open, overloaded, unavailable by default) and time
              v  left: the next strategy; none left: `unavailable` listing what each answered

Owns: the order of strategies, which kinds fall through, one breaker per pool/remote strategy,
telling the quarantine (``sidecar/routing/quarantine.py``) of crashes and completed runs (a repeated
crash of one request releases its permit instead of counting), each pool's route. Must not
touch: the strategies themselves (``sidecar/routing/strategies.py``: pool, direct runs, the remote
DEALER socket), the pools' internals (they are only ``submit``-ed to), the fronts, or the config
file (``build_chain`` takes the validated config). ``user`` errors and timeouts never fall
through (the config refuses them), and only infrastructure failures count against a breaker
(``breaker.classify_outcome``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from bridge import protocol
from bridge.breaker import BreakerEvent, BreakerState, CircuitBreaker
from bridge.codec import extend_map_encoded, pack_raw, unpack_raw
from bridge.zmq_auth import client_security
from sidecar.config.settings import breaker_config, direct_pool_settings
from sidecar.loop import Loop, Timer
from sidecar.pool.call import Call
from sidecar.pool.interface import PoolRegistry
from sidecar.routing.quarantine import Quarantine, QuarantineEvent
from sidecar.routing.strategies import (
    Attempt,
    DirectStrategy,
    PoolStrategy,
    RemoteStrategy,
    Strategy,
    read_remote_token,
)

log = logging.getLogger("py3sidecar.fallback")
# Outcomes of a call that ran to its end in a live worker (quarantine: not a poison's crash).
RAN_TO_ITS_END = frozenset({None, protocol.USER, protocol.TIMEOUT})

QUARANTINE_SWEEP = 5.0  # seconds between checks for quarantined fingerprints past their TTL


class FallbackChain:
    """``submit(call)`` like a pool; tries each strategy in order (see the module docstring)."""

    def __init__(self, loop: Loop, strategies: list[Strategy],
                 fall_through: Iterable[str] = (protocol.CIRCUIT_OPEN, protocol.OVERLOADED,
                                                protocol.UNAVAILABLE),
                 quarantine: Quarantine | None = None,
                 routes: dict[str, list[str]] | None = None) -> None:
        if protocol.USER in fall_through or protocol.TIMEOUT in fall_through:
            raise ValueError("user errors and timeouts never fall through")
        self.loop = loop
        self.strategies = strategies
        # A call's pool -> the strategies it tries, in order (default: all, as listed).
        index = {s.name: i for i, s in enumerate(strategies)}
        routes = routes or {strategies[0].name: [s.name for s in strategies]}
        self.routes = {pool: tuple(index[n] for n in names) for pool, names in routes.items()}
        self.default_route = self.routes[next(iter(routes))]
        self.fall_through = frozenset(fall_through)
        # "via": <name> appended to every reply map, pre-encoded once per strategy.
        self.via_tails = [pack_raw("via") + pack_raw(s.name) for s in strategies]
        self.served = {s.name: 0 for s in strategies}
        self.fell_through = {s.name: 0 for s in strategies}
        self.exhausted = 0
        self.events: list[dict[str, Any]] = []  # recent breaker transitions, newest last
        for strategy in strategies:
            if strategy.breaker is not None:
                strategy.breaker.subscribe(
                    lambda event, name=strategy.name: self.on_breaker_event(name, event))
        # Poison requests (sidecar/routing/quarantine.py): their repeated crashes count once.
        self.quarantine = quarantine
        self.sweep_timer: Timer | None = None
        if quarantine is not None:
            quarantine.subscribe(self.on_quarantine_event)

    # ------------------------------------------------------------ the executor seam
    def submit(self, call: Call, pool: str | None = None) -> None:
        """``pool``: one of ``routes`` (the caller checked it); None: the first route."""
        self.try_strategy(call, self.default_route if pool is None else self.routes[pool], 0, [])

    def try_strategy(self, caller: Call, route: tuple[int, ...], position: int,
                     tried: list[dict[str, Any]]) -> None:
        attempt = Attempt(self, caller, route, position, tried, self.loop.clock())
        strategy = self.strategies[attempt.index]
        breaker = strategy.breaker
        if breaker is not None:
            try:
                attempt.permit = breaker.acquire()
            except protocol.CircuitOpen as exc:
                attempt.fail(protocol.CIRCUIT_OPEN, exc.message, **exc.details)
                return
        strategy.submit(attempt)

    def attempt_answered(self, attempt: Attempt, data: bytes, outcome: str | None) -> None:
        strategy = self.strategies[attempt.index]
        counted = outcome != protocol.CRASHED or self.record_crash(attempt.caller)
        # It ran to its end (a value, its own exception, or its whole `timeout`): crashes of the
        # same request were someone else's kill, not a poison's.
        if outcome in RAN_TO_ITS_END and self.quarantine and self.quarantine.tracking:
            self.record_run(attempt.caller)
        if attempt.permit is not None:
            if counted:
                attempt.permit.record(outcome)
            else:  # a repeat of one poison request: one caller must not open it for all
                attempt.permit.release()
        strategy.finished(attempt)
        caller = attempt.caller
        if outcome is None:
            self.served[strategy.name] += 1
            caller.answer(extend_map_encoded(data, 1, self.via_tails[attempt.index]))
            return
        if outcome not in self.fall_through:
            caller.answer(extend_map_encoded(data, 1, self.via_tails[attempt.index]), outcome)
            return
        self.fell_through[strategy.name] += 1
        tried = attempt.tried
        last = attempt.position + 1 >= len(attempt.route)
        if not tried and last:  # a chain of one: its answer as it is (e.g. circuit_open)
            caller.answer(extend_map_encoded(data, 1, self.via_tails[attempt.index]), outcome)
            return
        tried.append(self.describe_attempt(strategy.name, outcome, data))
        if not last and caller.deadline > self.loop.clock():
            self.try_strategy(caller, attempt.route, attempt.position + 1, tried)
            return
        self.exhausted += 1
        summary = "; ".join(f"{t['strategy']}: {t['kind']} ({t['message']})" for t in tried)
        why = "" if last else " before the call's deadline"
        retry = [t["retry_after"] for t in tried if t.get("retry_after") is not None]
        caller.fail(protocol.UNAVAILABLE,
                    f"no execution strategy could serve this call{why}: {summary}",
                    attempts=tried, retry_after=min(retry) if retry else None)

    @staticmethod
    def describe_attempt(name: str, kind: str, data: bytes) -> dict[str, Any]:
        try:
            error = unpack_raw(data).get("error") or {}
        except Exception:  # an attempt's error reply is ours: this is only belt and braces
            error = {}
        described = {"strategy": name, "kind": kind, "message": error.get("message")}
        if error.get("retry_after") is not None:
            described["retry_after"] = error["retry_after"]
        return described

    # ------------------------------------------------------------ breakers
    def on_breaker_event(self, name: str, event: BreakerEvent) -> None:
        level = logging.WARNING if event.to_state in (BreakerState.OPEN,
                                                      BreakerState.FORCED_OPEN) else logging.INFO
        log.log(level, "circuit breaker %s: %s -> %s (%s)", name, event.from_state,
                event.to_state, event.reason)
        self.events.append({"breaker": name, "from": str(event.from_state),
                            "to": str(event.to_state), "reason": event.reason, "at": event.at})
        del self.events[:-50]

    # ------------------------------------------------------------ poison requests
    def record_crash(self, caller: Call) -> bool:
        """Tell the quarantine this call crashed a worker; True if the breaker should count it."""
        if self.quarantine is None:
            return True
        try:
            request = unpack_raw(caller.payload)  # admitted, so it decodes; crashes are rare
        except Exception:
            return True
        return self.quarantine.record_crash(self.quarantine.fingerprint(request),
                                            caller.accepted_at)

    def record_run(self, caller: Call) -> None:
        """It ran to its end: crashes of the same request were someone else's kill, not its own."""
        try:
            request = unpack_raw(caller.payload)  # only while a recent crash is remembered
        except Exception:
            return
        self.quarantine.record_run(request)

    def on_quarantine_event(self, event: QuarantineEvent) -> None:
        level = logging.WARNING if event.action == "quarantined" else logging.INFO
        log.log(level, "quarantine: %s %s (%s %r, %d crashes): %s", event.fingerprint,
                event.action, event.op, event.label, event.crashes, event.reason)

    def sweep_quarantine(self) -> None:
        # Expiry is lazy on every use; this only makes `expired` events timely when idle.
        if self.quarantine is not None:
            self.quarantine.sweep()
            self.sweep_timer = self.loop.call_later(QUARANTINE_SWEEP, self.sweep_quarantine)

    def breakers(self) -> dict[str, CircuitBreaker]:
        return {s.name: s.breaker for s in self.strategies if s.breaker is not None}

    # ------------------------------------------------------------ lifecycle and visibility
    def start(self) -> None:
        for strategy in self.strategies:
            strategy.start()
        self.sweep_quarantine()

    def begin_shutdown(self) -> None:
        for strategy in self.strategies:
            strategy.begin_shutdown()

    def busy(self) -> bool:
        return any(strategy.busy() for strategy in self.strategies)

    def terminate(self) -> None:
        for strategy in self.strategies:
            strategy.terminate()
        if self.sweep_timer is not None:
            self.sweep_timer.cancel()

    def snapshot(self) -> dict[str, Any]:
        return {
            "strategies": [s.name for s in self.strategies],
            "routes": {pool: [self.strategies[i].name for i in route]
                       for pool, route in self.routes.items()},
            "fall_through": sorted(self.fall_through),
            "served": dict(self.served),
            "fell_through": dict(self.fell_through),
            "exhausted": self.exhausted,
            "details": {s.name: s.snapshot() for s in self.strategies if s.snapshot()},
        }


# ---------------------------------------------------------------- from the config

def build_chain(loop: Loop, config: Any, registry: PoolRegistry,
                quarantine: Quarantine | None = None) -> FallbackChain:
    """One chain for every pool: a strategy (with its own breaker, but for ``direct``) per pool
    of the registry and fallback named anywhere, and a route per pool:
    ``python3.fallback.strategies`` for the primary, ``[name, *python3.pools.<name>.fallback]``
    for a named pool. Each strategy holds its pool's ``executor()`` (a local ``Pool`` itself)."""
    from sidecar.routing.registry import chained_names

    c = config.python3
    fallback = c.fallback
    breaker_settings = breaker_config(c.circuit_breaker)
    pools = registry.executors()
    primary = pools["primary"]
    strategies: list[Strategy] = []
    for name in chained_names(config):
        strategy: Strategy
        if name in pools:
            strategy = PoolStrategy(name, pools[name])
        elif name == "direct":
            section = fallback.direct
            settings = direct_pool_settings(primary.settings, section)
            strategy = DirectStrategy(loop, settings, max_concurrent=section.max_concurrent,
                                      start_timeout=section.start_timeout)
        else:
            section = fallback.remote
            token = section.token or read_remote_token(section.token_file)
            security = client_security(token, section.curve_server_key or None,
                                       section.client_key_file or None,
                                       "python3.fallback.remote.curve-server-key")
            strategy = RemoteStrategy(loop, section.endpoint, token, grace=section.grace,
                                      security=security)
        if name != "direct":
            strategy.breaker = CircuitBreaker(breaker_settings, clock=loop.clock, name=name)
        strategies.append(strategy)
    routes = {"primary": list(fallback.strategies),
              **{name: [name, *section.fallback] for name, section in c.pools.items()}}
    return FallbackChain(loop, strategies, fallback.fall_through, quarantine, routes)
