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
telling the quarantine (``sidecar/quarantine.py``) of crashes and completed runs (a repeated
crash of one request releases its permit instead of counting), the direct-execution runs (each
a ``sidecar.process.WorkerProcess``) and the remote DEALER socket. Must not touch: the pools'
internals (it is only ``submit``-ed to), the fronts, or the config file (``build_chain`` takes
the validated config). ``user`` errors and timeouts never fall through (the config refuses
them), and only infrastructure failures count against a breaker (``breaker.classify_outcome``).
"""

from __future__ import annotations

import itertools
import logging
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq

from bridge import protocol
from bridge.breaker import BreakerEvent, BreakerState, CircuitBreaker
from bridge.codec import extend_map_encoded, pack_raw, unpack_raw
from sidecar.call import Call
from sidecar.channel import FrameTooLarge
from sidecar.loop import Loop, Timer
from sidecar.pool import Pool, PoolSettings
from sidecar.process import WorkerProcess, WorkerSpec
from sidecar.quarantine import Quarantine, QuarantineEvent, fingerprint
from sidecar.settings import breaker_config, direct_pool_settings

log = logging.getLogger("py3sidecar.fallback")

QUARANTINE_SWEEP = 5.0  # seconds between checks for quarantined fingerprints past their TTL


def _nobody(data: bytes) -> None:  # an Attempt never replies on its own; see Attempt.answer
    raise AssertionError("an attempt's answer goes to its chain")


class Attempt(Call):
    """One strategy's try at a caller's call; its answer goes back to the chain."""

    __slots__ = ("caller", "chain", "route", "position", "index", "tried", "permit")

    def __init__(self, chain: FallbackChain, caller: Call, route: tuple[int, ...],
                 position: int, tried: list[dict[str, Any]], now: float) -> None:
        super().__init__(caller.rid, caller.payload, caller.timeout, _nobody, now)
        self.deadline = caller.deadline  # shared budget, not a fresh one per strategy
        self.caller = caller
        self.chain = chain
        self.route = route  # the strategies this call may try, in order (indices)
        self.position = position
        self.index = route[position]
        self.tried = tried
        self.permit: Any = None
        self.sink = self.back_to_chain

    def back_to_chain(self, data: bytes) -> None:
        """This attempt's sink: its answer (``outcome`` already set) goes to the chain."""
        self.chain.attempt_answered(self, data, self.outcome)


class Strategy:
    """One way to run a call. Subclasses override ``submit``; the rest are optional hooks."""

    name = "strategy"
    breaker: CircuitBreaker | None = None

    def start(self) -> None:
        pass

    def submit(self, attempt: Attempt) -> None:
        raise NotImplementedError

    def finished(self, attempt: Attempt) -> None:
        """Called once the attempt is answered (any outcome)."""

    def begin_shutdown(self) -> None:
        pass

    def busy(self) -> bool:
        return False

    def terminate(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {}


class PoolStrategy(Strategy):
    """A pool (local ``Pool`` or ``DaskPool``): the service and ``sidecar.pools`` own their
    lifecycles and show them in health (``pool``, ``pools``); the chain only submits to them."""

    def __init__(self, name: str, pool: Any) -> None:
        self.name = name
        self.pool = pool

    def submit(self, attempt: Attempt) -> None:
        self.pool.submit(attempt)


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
        # Poison requests (sidecar/quarantine.py): their repeated crashes count once.
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
        if outcome in (None, protocol.USER) and self.quarantine and self.quarantine.tracking:
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
        return self.quarantine.record_crash(fingerprint(request), caller.accepted_at)

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


# ---------------------------------------------------------------- direct execution

class DirectRun:
    """One fresh worker process for one call: spawn, wait for ready, send, read, let it go."""

    def __init__(self, strategy: DirectStrategy, attempt: Attempt) -> None:
        self.strategy = strategy
        self.attempt = attempt
        self.loop = strategy.loop
        self.ready = False
        self.timer: Timer | None = None
        self.linger_timer: Timer | None = None
        # Its fd 1/2 stay ours (as before the pool had its fd 1/2 pipe); no stack file: a
        # one-shot process that overruns is killed, not asked for its stack.
        self.process = WorkerProcess(self.loop, strategy.spec, label="direct-execution process")
        self.proc = self.process.proc
        self.process.on_write_error = lambda exc: self.finish(
            protocol.UNAVAILABLE, f"direct execution: could not hand the call to the fresh "
            f"process ({exc})")
        self.process.watch(self.on_output, self.on_exit)
        start_by = min(attempt.deadline, self.loop.clock() + strategy.start_timeout)
        self.timer = self.loop.call_at(start_by, self.on_start_deadline)

    @property
    def exited(self) -> bool:
        return self.process.exit is not None

    def on_output(self) -> None:
        reader = self.process.reader
        try:
            frames = reader.feed()
        except FrameTooLarge as exc:
            self.finish(protocol.CRASHED, f"direct execution: the process broke the protocol "
                        f"({exc})")
            return
        for frame in frames or ():
            if not self.ready:
                self.ready = True
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = self.loop.call_at(self.attempt.deadline, self.on_call_deadline)
                try:
                    self.process.write(self.attempt.payload)  # buffered, never blocking
                except OSError as exc:
                    self.finish(protocol.UNAVAILABLE, f"direct execution: could not hand the "
                                f"call to the fresh process ({exc})")
                    return
            elif not self.attempt.done:
                reply = unpack_raw(frame)
                reply["id"] = self.attempt.rid
                kind = None if reply.get("ok") else (reply.get("error") or {}).get(
                    "kind", protocol.INTERNAL)
                self.attempt.answer(pack_raw(reply), kind)
                self.release()
        if reader.eof:
            self.loop.remove_reader(reader.fd)

    def on_start_deadline(self) -> None:
        self.finish(protocol.UNAVAILABLE,
                    f"direct execution: a fresh Python process was not ready in time "
                    f"(python3.fallback.direct.start-timeout "
                    f"{self.strategy.start_timeout:g}s, or the call's deadline)")

    def on_call_deadline(self) -> None:
        self.finish(protocol.TIMEOUT, f"the call ran longer than its timeout of "
                    f"{self.attempt.timeout:g}s in direct execution; its process was killed")

    def on_exit(self) -> None:
        end = self.process.poll_exit()
        if end is None:
            return
        for _ in range(16):  # a reply racing the exit
            if self.process.reader.eof or self.attempt.done:
                break
            self.on_output()
        details = {k: v for k, v in end.items() if k not in ("returncode", "text")}
        if not self.attempt.done:
            if self.ready:
                self.attempt.fail(protocol.CRASHED, f"the direct-execution process died with "
                                  f"{end['text']}; the call's effects are unknown", **details)
            else:
                self.attempt.fail(protocol.UNAVAILABLE, f"direct execution: the Python process "
                                  f"exited with {end['text']} before it was ready")
        self.cleanup()

    def finish(self, kind: str, message: str) -> None:
        """Answer with an error (if not answered yet) and end the process now."""
        if not self.attempt.done:
            self.attempt.fail(kind, message)
        self.kill()

    def release(self) -> None:
        """Answered: close its in-pipe (it exits on EOF); kill it if it lingers."""
        if self.timer is not None:
            self.timer.cancel()
        self.process.close_input()
        if not self.exited:
            self.linger_timer = self.loop.call_later(2.0, self.kill)

    def kill(self) -> None:
        self.process.close_input()
        if not self.exited:
            self.process.kill_group()  # one-shot process: no grace needed

    def cleanup(self) -> None:
        for timer in (self.timer, self.linger_timer):
            if timer is not None:
                timer.cancel()
        self.process.reap()  # descriptors closed, whatever the user's code left behind killed
        self.proc.poll()
        self.strategy.runs.discard(self)


class DirectStrategy(Strategy):
    """One fresh ``python -m sidecar.worker`` per call: slow, isolated, independent of pools."""

    name = "direct"

    def __init__(self, loop: Loop, settings: PoolSettings, *, max_concurrent: int,
                 start_timeout: float) -> None:
        self.loop = loop
        self.python = list(settings.python)
        self.max_concurrent = max_concurrent
        self.start_timeout = start_timeout
        self.spec = WorkerSpec.from_settings(settings)  # as the pool's (python3.worker.user)
        self.runs: set[DirectRun] = set()
        self.closing = False
        self.started = 0

    def submit(self, attempt: Attempt) -> None:
        if self.closing:
            attempt.fail(protocol.UNAVAILABLE, "the sidecar is shutting down")
            return
        if len(self.runs) >= self.max_concurrent:
            attempt.fail(protocol.OVERLOADED,
                         f"direct execution already runs {len(self.runs)} calls "
                         "(python3.fallback.direct.max-concurrent)")
            return
        try:
            run = DirectRun(self, attempt)
        except OSError as exc:
            attempt.fail(protocol.UNAVAILABLE, f"direct execution could not start "
                         f"{self.python[0]}: {type(exc).__name__}: {exc}")
            return
        self.started += 1
        self.runs.add(run)

    def begin_shutdown(self) -> None:
        self.closing = True

    def busy(self) -> bool:
        return any(not run.attempt.done for run in self.runs)

    def terminate(self) -> None:
        self.closing = True
        for run in list(self.runs):
            run.finish(protocol.UNAVAILABLE, "the sidecar shut down during direct execution")
            try:
                run.proc.wait(1.0)  # SIGKILLed: this is immediate
            except subprocess.TimeoutExpired:
                pass
            run.cleanup()

    def snapshot(self) -> dict[str, Any]:
        return {"running": len(self.runs), "started": self.started,
                "max_concurrent": self.max_concurrent}


# ---------------------------------------------------------------- remote sidecar

REMOTE_HEARTBEAT_MS = 1000  # remote sidecar's connection: ping interval; 3 missed: reconnect


class RemoteStrategy(Strategy):
    """Forward the envelope to another sidecar's ROUTER with its token (non-blocking DEALER)."""

    name = "remote"

    def __init__(self, loop: Loop, endpoint: str, token: str, *, grace: float,
                 context: zmq.Context | None = None) -> None:
        self.loop = loop
        self.endpoint = endpoint
        self.token = token
        self.grace = grace
        self.context = context or zmq.Context.instance()
        self.socket: zmq.Socket | None = None
        self.pending: dict[int, Attempt] = {}
        self.ids = itertools.count(1)
        self.closing = False
        self.forwarded = 0

    def start(self) -> None:
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        sock.immediate = True  # nothing queued for a peer that is not there: fail at once
        # A connection whose peer vanished without FIN (host gone, NAT state dropped) would
        # hold this one socket dead forever: ZMTP heartbeats drop it, and libzmq reconnects.
        sock.heartbeat_ivl = REMOTE_HEARTBEAT_MS
        sock.heartbeat_timeout = REMOTE_HEARTBEAT_MS * 3
        sock.connect(self.endpoint)
        self.socket = sock
        self.loop.add_reader(sock, self.on_readable)

    def submit(self, attempt: Attempt) -> None:
        if self.closing or self.socket is None:
            attempt.fail(protocol.UNAVAILABLE, "the sidecar is shutting down")
            return
        remaining = attempt.deadline - self.loop.clock()
        fields = unpack_raw(attempt.payload)
        forward_id = next(self.ids)
        fields.pop("id", None)
        fields.pop("token", None)
        # Ours first: ids may collide; the token goes before large members (bridge/preauth.py).
        request = {"id": forward_id, "token": self.token, **fields}
        request["timeout"] = max(remaining, 0.001)
        try:
            self.socket.send(pack_raw(request), zmq.NOBLOCK)
        except zmq.Again:
            attempt.fail(protocol.UNAVAILABLE,
                         f"the remote sidecar at {self.endpoint} is not connected "
                         "(python3.fallback.remote.endpoint); is it running?")
            return
        self.forwarded += 1
        self.pending[forward_id] = attempt
        attempt.timer = self.loop.call_at(attempt.deadline + self.grace,
                                          lambda: self.expire(forward_id))

    def expire(self, forward_id: int) -> None:
        attempt = self.pending.pop(forward_id, None)
        if attempt is not None:
            attempt.fail(protocol.UNAVAILABLE,
                         f"no reply from the remote sidecar at {self.endpoint} by the call's "
                         "deadline; it may be down or frozen, and the call's effects are unknown")

    def on_readable(self) -> None:
        sock = self.socket
        for _ in range(64):
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = unpack_raw(data)
            except Exception:
                log.warning("junk reply from the remote sidecar at %s dropped", self.endpoint)
                continue
            attempt = self.pending.pop(reply.get("id"), None) if isinstance(reply, dict) else None
            if attempt is None:
                continue  # late (its attempt expired) or unreadable by the remote
            reply["id"] = attempt.rid
            if "via" in reply:
                reply["remote_via"] = reply.pop("via")
            error = reply.get("error") or {}
            kind = None if reply.get("ok") else error.get("kind", protocol.INTERNAL)
            if kind == protocol.UNAUTHORIZED:
                attempt.fail(protocol.UNAVAILABLE,
                             f"the remote sidecar at {self.endpoint} refused our token; set "
                             "python3.fallback.remote.token to its token")
                continue
            attempt.answer(pack_raw(reply), kind)

    def begin_shutdown(self) -> None:
        self.closing = True

    def busy(self) -> bool:
        return bool(self.pending)

    def terminate(self) -> None:
        self.closing = True
        for forward_id in list(self.pending):
            attempt = self.pending.pop(forward_id)
            attempt.fail(protocol.UNAVAILABLE, "the sidecar shut down while the remote "
                         "sidecar was running this call; its effects are unknown")
        if self.socket is not None:
            self.loop.remove_reader(self.socket)
            self.socket.close(0)
            self.socket = None

    def snapshot(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "in_flight": len(self.pending),
                "forwarded": self.forwarded}


# ---------------------------------------------------------------- from the config

def build_chain(loop: Loop, config: Any, primary: Pool, named: Any = None,
                quarantine: Quarantine | None = None) -> FallbackChain:
    """One chain for every pool: a strategy (with its own breaker, but for ``direct``) per pool
    and fallback named anywhere, and a route per pool: ``python3.fallback.strategies`` for the
    primary, ``[name, *python3.pools.<name>.fallback]`` for a named pool."""
    from sidecar.pools import chained_names

    c = config.python3
    fallback = c.fallback
    breaker_settings = breaker_config(c.circuit_breaker)
    pools = {"primary": primary, **(named.executors() if named is not None else {})}
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
            token = section.token or _read_remote_token(section.token_file)
            strategy = RemoteStrategy(loop, section.endpoint, token, grace=section.grace)
        if name != "direct":
            strategy.breaker = CircuitBreaker(breaker_settings, clock=loop.clock, name=name)
        strategies.append(strategy)
    routes = {"primary": list(fallback.strategies),
              **{name: [name, *section.fallback] for name, section in c.pools.items()}}
    return FallbackChain(loop, strategies, fallback.fall_through, quarantine, routes)


def _read_remote_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"python3.fallback.remote.token-file = {path!r}: cannot read it "
                         f"({exc.strerror}); copy the other sidecar's token there") from None
    if not token:
        raise ValueError(f"python3.fallback.remote.token-file = {path!r} is empty")
    return token
