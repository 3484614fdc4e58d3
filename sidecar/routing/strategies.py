"""The ways to run a call that the fallback chain tries in turn: a pool, direct execution (one
fresh process per call), another sidecar.

Owns: the ``Strategy`` interface (``submit(attempt)`` plus optional lifecycle hooks), the pool
strategy (a ``Pool`` or ``DaskPool``, whose lifecycles its owners keep), the direct runs (each a
``sidecar.process.spawn.WorkerProcess``) and the remote DEALER socket. Must not touch: the order of
strategies, fall-through and breakers (``sidecar.routing.chain``), the pools' internals, the config.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
from pathlib import Path
from typing import Any, Protocol

import zmq
from zmq.utils.monitor import parse_monitor_message

from bridge import protocol
from bridge.breaker import CircuitBreaker
from bridge.codec import pack_raw, unpack_raw
from bridge.zmq_auth import ClientSecurity
from sidecar.channel import FrameTooLarge
from sidecar.loop import Loop, Timer
from sidecar.pool.call import Call
from sidecar.pool.settings import PoolSettings
from sidecar.process.spawn import WorkerProcess, WorkerSpec

log = logging.getLogger("py3sidecar.fallback")


class AttemptSink(Protocol):
    """Where an attempt's answer goes: the fallback chain (``sidecar.routing.chain``)."""

    def attempt_answered(self, attempt: Attempt, data: bytes, outcome: str | None) -> None:
        ...


def _nobody(data: bytes) -> None:  # an Attempt never replies on its own; see Attempt.answer
    raise AssertionError("an attempt's answer goes to its chain")


class Attempt(Call):
    """One strategy's try at a caller's call; its answer goes back to the chain."""

    __slots__ = ("caller", "chain", "route", "position", "index", "tried", "permit")

    def __init__(self, chain: AttemptSink, caller: Call, route: tuple[int, ...],
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
    """A pool (local ``Pool`` or ``DaskPool``): the service and ``sidecar.routing.registry`` own
    their lifecycles and show them in health (``pool``, ``pools``); the chain only submits to
    them."""

    def __init__(self, name: str, pool: Any) -> None:
        self.name = name
        self.pool = pool

    def submit(self, attempt: Attempt) -> None:
        self.pool.submit(attempt)


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
    """One fresh ``python -m sidecar.worker.main`` per call: slow, isolated, independent of
    pools."""

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
_HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH


class RemoteStrategy(Strategy):
    """Forward the envelope to another sidecar's ROUTER with its token (non-blocking DEALER),
    authenticated at the handshake as every client is (PLAIN with the token, or CURVE)."""

    name = "remote"

    def __init__(self, loop: Loop, endpoint: str, token: str, *, grace: float,
                 context: zmq.Context | None = None,
                 security: ClientSecurity | None = None) -> None:
        self.loop = loop
        self.endpoint = endpoint
        self.token = token
        self.security = security or ClientSecurity(token)
        self.monitor: zmq.Socket | None = None
        self.refused_handshake = False
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
        self.security.apply(sock)
        # Handshake outcomes only (a few per connection): a refused token or key is named.
        self.monitor = sock.get_monitor_socket(_HANDSHAKE_EVENTS)
        self.loop.add_reader(self.monitor, self.on_handshake_event)
        sock.connect(self.endpoint)
        self.socket = sock
        self.loop.add_reader(sock, self.on_readable)

    def on_handshake_event(self) -> None:
        for _ in range(16):
            try:
                event = parse_monitor_message(self.monitor.recv_multipart(zmq.NOBLOCK))["event"]
            except zmq.Again:
                return
            refused = event != zmq.EVENT_HANDSHAKE_SUCCEEDED
            if refused and not self.refused_handshake:
                log.warning("the remote sidecar at %s refused this sidecar at the ZeroMQ "
                            "handshake (%s): check python3.fallback.remote.token/token-file "
                            "and, under CURVE, curve-server-key and client-key-file",
                            self.endpoint, self.security.mechanism.upper())
            self.refused_handshake = refused

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
            attempt.fail(protocol.UNAVAILABLE, (
                f"the remote sidecar at {self.endpoint} refused this sidecar at the ZeroMQ "
                f"handshake ({self.security.mechanism.upper()}); check python3.fallback.remote"
                ".token and, under CURVE, curve-server-key and client-key-file")
                if self.refused_handshake else
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
        if self.monitor is not None:
            self.loop.remove_reader(self.monitor)
            if self.socket is not None:
                self.socket.disable_monitor()
            self.monitor.close(0)
            self.monitor = None
        if self.socket is not None:
            self.loop.remove_reader(self.socket)
            self.socket.close(0)
            self.socket = None

    def snapshot(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "in_flight": len(self.pending),
                "forwarded": self.forwarded}


def read_remote_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"python3.fallback.remote.token-file = {path!r}: cannot read it "
                         f"({exc.strerror}); copy the other sidecar's token there") from None
    if not token:
        raise ValueError(f"python3.fallback.remote.token-file = {path!r} is empty")
    return token
