"""The CPython client: call a py3sidecar from tests, the CLI, benchmarks or another service.

Owns: one link per calling thread and endpoint (thread-safe without a lock on the hot path:
PLAIN over tcp:// speaks ZMTP itself, bridge/zmtp_plain.py, with no libzmq thread hop per
call; CURVE and other endpoints use a libzmq DEALER, bridge/zmq_link.py), request ids,
client-side deadlines, turning error replies into exceptions, and failover across several
sidecars with a client-side circuit breaker per endpoint. Must not touch: the sidecar's side.

    from bridge.client import Client
    with Client() as py:
        py.execute("import math; math.sqrt(x)", {"x": 2.0}).value
        py.call("statistics:mean", [1, 2, 3])

    Client("unix:/run/py3sidecar/sidecar.sock")  # this host's sidecar: the cheapest hop
    # several sidecars, tried in order (a dead one skipped while its breaker is open):
    Client(["tcp://10.0.0.1:5557", "tcp://10.0.0.2:5557"])   # or "tcp://a:5557,tcp://b:5557"

The ZeroMQ handshake authenticates the client (bridge/zmq_auth.py): PLAIN with the token by
default; CURVE when the sidecar's public key is known (``curve_server_key`` or
$PY3SIDECAR_CURVE_SERVER_KEY, else ``zmq.curve.server-key`` of the connection file when it names
the endpoint), with the client's own key pair from ``client_key_file`` (or
$PY3SIDECAR_CLIENT_KEY_FILE; none: a fresh pair, which a sidecar with client-keys-dir refuses).

Failover happens when an endpoint cannot be reached, when the connection drops while a reply is
awaited (seen at once: end of stream, or a socket monitor; such a call may have partly run on
the lost sidecar and is re-sent), and when a sidecar answers ``unavailable`` or
``circuit_open`` (the call never ran there). Later attempts share the call's deadline.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zmq

from bridge import codec, protocol
from bridge.breaker import BreakerConfig, CircuitBreaker
from bridge.connection import read_connection_file
from bridge.plain_client import WATCH_SIZE, LeanLink, answers, lost, no_reply, too_large
from bridge.protocol import (
    BadRequest,
    CallTimeout,
    CircuitOpen,
    Forbidden,
    InternalError,
    Overloaded,
    PythonError,
    Quarantined,
    SidecarError,
    Unauthorized,
    Unavailable,
    WorkerCrashed,
)
from bridge.token import read_token
from bridge.unix_client import UnixLink
from bridge.zmq_auth import ClientSecurity, client_security
from bridge.zmq_link import LOST, WATCHED, ZmqLink
from bridge.zmtp_plain import AVAILABLE, tcp_address

__all__ = ["Client", "Result", "SidecarError", "PythonError", "CallTimeout", "WorkerCrashed",
           "Overloaded", "CircuitOpen", "Unavailable", "BadRequest", "Unauthorized",
           "InternalError", "Quarantined", "Forbidden", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
ENV_ENDPOINT = "PY3SIDECAR_ENDPOINT"
ENV_CURVE_SERVER_KEY = "PY3SIDECAR_CURVE_SERVER_KEY"
ENV_CLIENT_KEY_FILE = "PY3SIDECAR_CLIENT_KEY_FILE"

# One failed connection or lost reply opens an endpoint's breaker: the next calls skip it at
# once (or fail at once, with one endpoint) until a single probe finds it back.
CLIENT_BREAKER = BreakerConfig(failure_threshold=1, failure_rate_threshold=1.0, window_size=1,
                               minimum_calls=1, open_timeout=2.0, half_open_max_probes=1,
                               success_threshold=1, count_timeouts=False)
# Kinds a sidecar answers when the call never ran there: another sidecar may serve it.
FAILOVER_KINDS = (protocol.UNAVAILABLE, protocol.CIRCUIT_OPEN)


def parse_endpoints(endpoint: str | Sequence[str] | None) -> list[str]:
    """``"tcp://a:1,tcp://b:2"`` or a list -> a list; None -> $PY3SIDECAR_ENDPOINT or default."""
    if not endpoint:
        endpoint = os.environ.get(ENV_ENDPOINT) or DEFAULT_ENDPOINT
    items = endpoint.split(",") if isinstance(endpoint, str) else list(endpoint)
    endpoints = [e.strip() for e in items if e and e.strip()]
    if not endpoints:
        raise ValueError(f"no sidecar endpoint in {endpoint!r}")
    return endpoints


@dataclass(frozen=True)
class Result:
    value: Any
    stdout: str
    stderr: str
    worker: int | None
    duration_ms: float
    via: str | None = None
    """The sidecar's strategy that served the call (primary, secondary, direct, remote)."""
    endpoint: str | None = None
    """The sidecar that answered."""


class Client:
    """A thread-safe client of one sidecar, or of several tried in order (see the module doc).

    ``timeout`` (seconds) is the default per-call timeout sent to the sidecar; the client waits
    at most that plus ``grace`` for the reply, so a dead or frozen sidecar never hangs the caller.
    ``connect_timeout`` bounds the wait for a connection when the sidecar is down. ``breaker``
    configures the per-endpoint client-side circuit breaker (default ``CLIENT_BREAKER``).
    """

    def __init__(self, endpoint: str | Sequence[str] | None = None, token: str | None = None,
                 timeout: float = 30.0, *, connect_timeout: float = 1.0, grace: float = 2.0,
                 token_file: str | None = None, breaker: BreakerConfig | None = None,
                 curve_server_key: str | bytes | None = None,
                 client_key_file: str | None = None,
                 connection_file: str | None = None, libzmq: bool = False) -> None:
        self.endpoints = parse_endpoints(endpoint)
        # True: libzmq's DEALER even for PLAIN over tcp:// (the hand-written ZMTP link's peer
        # in benchmarks/cpu_per_call.py, and a way back should that link ever misbehave)
        self.libzmq = libzmq
        self.endpoint = self.endpoints[0]
        self.token = token if token is not None else read_token(token_file)
        self.security = self._handshake_security(curve_server_key, client_key_file,
                                                 connection_file)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.grace = grace
        self.breakers = {e: CircuitBreaker(breaker or CLIENT_BREAKER, name=e)
                         for e in self.endpoints}
        self._single = len(self.endpoints) == 1
        self._breaker = self.breakers[self.endpoint]
        # The process-wide context: a private one would be terminated by the garbage collector
        # when a client is dropped unclosed, and ``term()`` blocks while any socket lives.
        self._context = zmq.Context.instance()
        self._local = threading.local()
        self._links: list[ZmqLink | LeanLink | UnixLink] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    def _handshake_security(self, server_key: str | bytes | None, key_file: str | None,
                            connection_file: str | None) -> dict[str, ClientSecurity]:
        """Per endpoint: CURVE where the sidecar's public key is known, else PLAIN."""
        server_key = server_key or os.environ.get(ENV_CURVE_SERVER_KEY) or None
        key_file = key_file or os.environ.get(ENV_CLIENT_KEY_FILE) or None
        known: dict[str, str] = {}
        if not server_key:  # the local sidecar tells its key in its connection file
            info = (read_connection_file(connection_file) or {}).get("zmq") or {}
            key = (info.get("curve") or {}).get("server-key")
            if info.get("mechanism") == "curve" and key and info.get("endpoint"):
                known[info["endpoint"]] = key
        plain = client_security(self.token)
        curve = client_security(self.token, server_key, key_file) if server_key else None
        found = {key: client_security(self.token, key, key_file, "connection.json")
                 for key in set(known.values())}
        return {e: curve or (found[known[e]] if e in known else plain) for e in self.endpoints}

    # ------------------------------------------------------------ public API
    def execute(self, code: str, variables: dict[str, Any] | None = None,
                timeout: float | None = None, pool: str | None = None) -> Result:
        """Run ``code`` in a fresh namespace holding ``variables``; see ``Result``. ``pool``:
        one of the sidecar's named pools (``python3.pools``); None: the primary pool."""
        request: dict[str, Any] = {"op": "execute", "code": code}
        if variables:
            request["vars"] = variables
        if pool is not None:
            request["pool"] = pool
        reply = self.request(request, timeout)
        return Result(reply.get("value"), reply.get("stdout", ""), reply.get("stderr", ""),
                      reply.get("worker"), reply.get("ms", 0.0), reply.get("via"),
                      reply.get("endpoint", self.endpoint))

    def call(self, target: str, *args: Any, timeout: float | None = None,
             pool: str | None = None, **kwargs: Any) -> Any:
        """Call ``"package.module:function"`` with ``args``/``kwargs`` and return its value
        (``timeout`` and ``pool`` are this method's own, as in ``execute``)."""
        request: dict[str, Any] = {"op": "call", "target": target, "args": list(args)}
        if kwargs:
            request["kwargs"] = kwargs
        if pool is not None:
            request["pool"] = pool
        return self.request(request, timeout).get("value")

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        return self.request({"op": "ping"}, timeout or min(self.timeout, 5.0)).get("value")

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        return self.request({"op": "health"}, timeout or min(self.timeout, 5.0)).get("value")

    def diagnostics(self, command: str = "help", timeout: float | None = None,
                    **args: Any) -> Any:
        """``diag`` op; ``args`` are the command's options (e.g. ``top=10``, ``limit=50``)."""
        request: dict[str, Any] = {"op": "diag", "command": command}
        if args:
            request["args"] = args
        return self.request(request, timeout).get("value")

    def breaker(self, command: str = "status", name: str = "primary",
                timeout: float | None = None) -> dict[str, Any]:
        """The sidecar's circuit breakers: ``status``, or force ``open``/``close``/``disable``."""
        return self.request({"op": "breaker", "command": command, "name": name},
                            timeout or min(self.timeout, 5.0)).get("value")

    def quarantine(self, action: str = "list", fingerprint: str | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """Poison requests the sidecar refuses: ``list`` them, or ``clear`` one (or all)."""
        request: dict[str, Any] = {"op": "quarantine", "action": action}
        if fingerprint is not None:
            request["fingerprint"] = fingerprint
        return self.request(request, timeout or min(self.timeout, 5.0)).get("value")

    # ------------------------------------------------------------ the round trip
    def request(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one envelope and return the successful reply map, or raise its error."""
        timeout = self.timeout if timeout is None else timeout
        rid = next(self._ids)
        # The token goes first: until it is checked the sidecar steps over only a few thousand
        # values (bridge/preauth.py), so it must not sit behind a large argument.
        request = {"v": protocol.VERSION, "id": rid, "token": self.token or "", **request}
        request["v"], request["id"], request["token"] = protocol.VERSION, rid, self.token or ""
        request["timeout"] = timeout
        payload = codec.packb(request)
        if self._single:
            permit = self._breaker.try_acquire()
            if permit is None:
                raise self._skipped(self.endpoint)
            failed = None  # any other error (too large, our credentials, ...): the sidecar is fine
            try:
                reply = self.send_and_wait(payload, rid, timeout + self.grace)
            except Unavailable:
                failed = protocol.UNAVAILABLE
                raise
            finally:  # exactly once, whatever ends the call: a probe's permit is never kept
                permit.record(failed)
        else:
            reply = self._request_with_failover(request, payload, rid, timeout)
        if reply.get("ok"):
            return reply
        raise protocol.exception_from_error(reply.get("error"))

    def _request_with_failover(self, request: dict[str, Any], payload: bytes, rid: int,
                               timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        retry_after: list[float] = []
        last = len(self.endpoints) - 1
        for index, endpoint in enumerate(self.endpoints):
            permit = self.breakers[endpoint].try_acquire()
            if permit is None:
                skipped = self._skipped(endpoint)
                problems.append(skipped.message)
                if skipped.details.get("retry_after") is not None:
                    retry_after.append(skipped.details["retry_after"])
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                permit.release()
                problems.append(f"{endpoint}: not tried, the call's {timeout:g}s were spent")
                break
            if problems:  # a later attempt: only what is left of the caller's budget
                request["timeout"] = remaining
                payload = codec.packb(request)
            try:
                reply = self.send_and_wait(payload, rid, remaining + self.grace,
                                           endpoint=endpoint, patient=index == last)
            except Unavailable as exc:
                permit.record(protocol.UNAVAILABLE)
                problems.append(exc.message)
                continue
            except (BadRequest, Unauthorized):  # too large, or our credentials: not its health
                permit.record(None)
                raise
            permit.record(None)  # it answered: alive, whatever the answer says
            kind = None if reply.get("ok") else (reply.get("error") or {}).get("kind")
            if kind in FAILOVER_KINDS and index < last:
                problems.append(f"{endpoint} answered {kind}: "
                                f"{(reply.get('error') or {}).get('message')}")
                continue
            reply["endpoint"] = endpoint
            return reply
        raise Unavailable("no sidecar could serve this call: " + "; ".join(problems),
                          details={"endpoints": self.endpoints,
                                   "retry_after": min(retry_after) if retry_after else None})

    def _skipped(self, endpoint: str) -> Unavailable:
        """The error for an endpoint whose client-side breaker is open (no network touched)."""
        retry = self.breakers[endpoint].retry_after()
        return Unavailable(f"the sidecar at {endpoint} was unreachable moments ago; this client "
                           f"tries it again in {retry or 0:.1f}s (client circuit breaker)",
                           details={"retry_after": retry, "endpoint": endpoint})

    def send_and_wait(self, payload: bytes, rid: int, wait: float, *,
                      endpoint: str | None = None, patient: bool = True) -> dict[str, Any]:
        """One exchange with one endpoint; ``Unavailable`` when it cannot be had.

        ``patient=False`` (an endpoint with others after it) gives up at once on a socket that
        had its chance to connect, and on a refused connection, instead of waiting
        ``connect_timeout``.
        """
        endpoint = endpoint or self.endpoint
        link = self._link(endpoint)
        if type(link) is LeanLink:
            return link.exchange(payload, rid, wait, patient)
        if type(link) is UnixLink:  # this host's sidecar, no libzmq: bridge/unix_client
            return link.exchange(payload, rid, wait)
        if len(payload) >= WATCH_SIZE and link.monitor is None:
            link.watch()
        sock = link.sock
        if link.monitor is not None:
            link.events()  # forget disconnects from before this call: they are not ours
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            # ZMQ_IMMEDIATE: nothing is queued until a connection exists. Wait for one, briefly.
            self._wait_connected(link, endpoint, patient)
            sock.send(payload, zmq.NOBLOCK)
        # One deadline for the whole wait: stale replies and monitor events that arrive meanwhile
        # do not start it again.
        deadline = time.monotonic() + wait
        poll = link.poller.poll
        while True:
            left = deadline - time.monotonic()
            ready = poll(max(1, int(left * 1000))) if left > 0 else []
            if not ready:
                # The sidecar took the request but never answered: drop the socket so a late
                # reply cannot be mistaken for the next call's.
                self._discard_link(endpoint)
                raise Unavailable(no_reply(endpoint, wait))
            if link.monitor is not None and (len(ready) > 1 or ready[0][0] is not sock):
                dropped = LOST in link.events()
                if all(source is not sock for source, _ in ready):
                    if dropped and len(payload) >= WATCH_SIZE:
                        raise BadRequest(too_large(endpoint, len(payload)))
                    if dropped:
                        raise Unavailable(lost(endpoint))
                    continue  # an event that changes nothing; the wait goes on (rare)
            reply = codec.unpackb(sock.recv(copy=False).buffer)  # no copy of a large reply
            if answers(reply, rid):
                return reply

    def _wait_connected(self, link: ZmqLink, endpoint: str, patient: bool) -> None:
        unreachable = (f"cannot reach the sidecar at {endpoint} within "
                       f"{self.connect_timeout:g}s; is it running (`py3sidecar serve`)?")
        waited = time.monotonic() - link.created
        if not patient and waited >= self.connect_timeout:
            raise Unavailable(f"the sidecar at {endpoint} is not connected; is it running?")
        deadline = time.monotonic() + self.connect_timeout - (0 if patient else waited)
        # Without failover the link is watched only while it connects: a refused token or key
        # is told at once, not as an unreachable sidecar after connect_timeout. libzmq does not
        # retry a refused handshake, so that monitor was started before connect (``_link``).
        temporary = link.monitor is None
        monitor = link.monitor or link.connecting or link.sock.get_monitor_socket(WATCHED)
        link.connecting = None
        try:
            link.await_connection(monitor, endpoint, deadline, patient, unreachable,
                                  functools.partial(self._refused, endpoint))
        except SidecarError as exc:
            if temporary or isinstance(exc, Unauthorized):
                self._discard_link(endpoint)
            raise
        finally:
            if temporary:
                if not link.sock.closed:
                    link.sock.disable_monitor()
                monitor.close(0)

    def _refused(self, endpoint: str) -> Unauthorized:
        return Unauthorized(
            f"the sidecar at {endpoint} refused this client at the ZeroMQ handshake "
            f"({self.security[endpoint].mechanism.upper()}): use its token (its token "
            "file, $PY3SIDECAR_TOKEN), and under CURVE its server key (zmq.curve."
            "server-key in its connection.json) and a client key listed in its "
            "python3.bridge.zmq.curve.client-keys-dir")

    def _link(self, endpoint: str) -> ZmqLink | LeanLink | UnixLink:
        links = getattr(self._local, "links", None)
        if links is None:
            links = self._local.links = {}
        link = links.get(endpoint)
        if link is None:
            if self._closed:
                raise Unavailable("this client is closed")
            security = self.security[endpoint]
            lean = (AVAILABLE and security.mechanism == "plain"  # POSIX, PLAIN: the lean link
                    and not self.libzmq)
            address = tcp_address(endpoint) if lean else None
            if endpoint.startswith("unix:"):  # this host's sidecar, no libzmq
                link = UnixLink(endpoint[len("unix:"):], self.connect_timeout)
            elif address is not None:  # connected on first use
                link = LeanLink(endpoint, address, security.token, self.connect_timeout,
                                functools.partial(self._refused, endpoint))
            else:
                link = self._zmq_link(endpoint, security)
            links[endpoint] = link
            with self._lock:
                self._links.append(link)
        return link

    def _zmq_link(self, endpoint: str, security: ClientSecurity) -> ZmqLink:
        sock = self._context.socket(zmq.DEALER)
        sock.linger = 0
        sock.immediate = True
        security.apply(sock)  # PLAIN or CURVE (bridge/zmq_auth.py)
        monitor = connecting = None
        if not self._single:  # failover wants to see connections drop, at once
            monitor = sock.get_monitor_socket(WATCHED)
        else:  # until the first connection: see _wait_connected
            connecting = sock.get_monitor_socket(WATCHED)
        sock.connect(endpoint)
        return ZmqLink(sock, monitor, connecting)

    def _discard_link(self, endpoint: str) -> None:
        links = getattr(self._local, "links", None) or {}
        link = links.pop(endpoint, None)
        if link is not None:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            link.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for link in self._links:
                link.close()
            self._links.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
