"""The CPython client: call a py3sidecar from tests, the CLI, benchmarks or another service.

Owns: one ZeroMQ DEALER socket per calling thread (so the client is thread-safe without a lock
on the hot path), request ids, client-side deadlines, turning error replies into exceptions.
Must not touch: anything on the sidecar's side.

    from bridge.client import Client
    with Client() as py:
        py.execute("import math; math.sqrt(x)", {"x": 2.0}).value
        py.call("statistics:mean", [1, 2, 3])
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any

import zmq

from bridge import codec, protocol
from bridge.protocol import (
    BadRequest,
    CallTimeout,
    CircuitOpen,
    InternalError,
    Overloaded,
    PythonError,
    SidecarError,
    Unauthorized,
    Unavailable,
    WorkerCrashed,
)
from bridge.token import read_token

__all__ = ["Client", "Result", "SidecarError", "PythonError", "CallTimeout", "WorkerCrashed",
           "Overloaded", "CircuitOpen", "Unavailable", "BadRequest", "Unauthorized",
           "InternalError", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
ENV_ENDPOINT = "PY3SIDECAR_ENDPOINT"


@dataclass(frozen=True)
class Result:
    value: Any
    stdout: str
    stderr: str
    worker: int | None
    duration_ms: float


class Client:
    """A thread-safe client.

    ``timeout`` (seconds) is the default per-call timeout sent to the sidecar; the client waits
    at most that plus ``grace`` for the reply, so a dead or frozen sidecar never hangs the caller.
    ``connect_timeout`` bounds the wait for a connection when the sidecar is down.
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None,
                 timeout: float = 30.0, *, connect_timeout: float = 1.0, grace: float = 2.0,
                 token_file: str | None = None) -> None:
        self.endpoint = endpoint or os.environ.get(ENV_ENDPOINT) or DEFAULT_ENDPOINT
        self.token = token if token is not None else read_token(token_file)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.grace = grace
        self._context = zmq.Context()
        self._local = threading.local()
        self._sockets: list[zmq.Socket] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    # ------------------------------------------------------------ public API
    def execute(self, code: str, variables: dict[str, Any] | None = None,
                timeout: float | None = None) -> Result:
        """Run ``code`` in a fresh namespace holding ``variables``; see ``Result``."""
        request: dict[str, Any] = {"op": "execute", "code": code}
        if variables:
            request["vars"] = variables
        reply = self.request(request, timeout)
        return Result(reply.get("value"), reply.get("stdout", ""), reply.get("stderr", ""),
                      reply.get("worker"), reply.get("ms", 0.0))

    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``"package.module:function"`` with ``args``/``kwargs`` and return its value."""
        request: dict[str, Any] = {"op": "call", "target": target, "args": list(args)}
        if kwargs:
            request["kwargs"] = kwargs
        return self.request(request, timeout).get("value")

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        return self.request({"op": "ping"}, timeout or min(self.timeout, 5.0)).get("value")

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        return self.request({"op": "health"}, timeout or min(self.timeout, 5.0)).get("value")

    def diagnostics(self, command: str = "help", timeout: float | None = None) -> Any:
        return self.request({"op": "diag", "command": command}, timeout).get("value")

    # ------------------------------------------------------------ the round trip
    def request(self, request: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one envelope and return the successful reply map, or raise its error."""
        timeout = self.timeout if timeout is None else timeout
        rid = next(self._ids)
        request["v"] = protocol.VERSION
        request["id"] = rid
        request["token"] = self.token or ""
        request["timeout"] = timeout
        payload = codec.packb(request)
        reply = self.send_and_wait(payload, rid, timeout + self.grace)
        if reply.get("ok"):
            return reply
        raise protocol.exception_from_error(reply.get("error"))

    def send_and_wait(self, payload: bytes, rid: int, wait: float) -> dict[str, Any]:
        sock = self._socket()
        try:
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            # ZMQ_IMMEDIATE: nothing is queued until a connection exists. Wait for one, briefly.
            if not sock.poll(int(self.connect_timeout * 1000), zmq.POLLOUT):
                self._discard_socket()
                raise Unavailable(f"cannot reach the sidecar at {self.endpoint} within "
                                  f"{self.connect_timeout:g}s; is it running (`py3sidecar "
                                  "serve`)?") from None
            sock.send(payload, zmq.NOBLOCK)
        remaining_ms = int(wait * 1000)
        while True:
            if not sock.poll(remaining_ms, zmq.POLLIN):
                # The sidecar took the request but never answered: drop the socket so a late
                # reply cannot be mistaken for the next call's.
                self._discard_socket()
                raise Unavailable(f"no reply from the sidecar at {self.endpoint} within "
                                  f"{wait:g}s; it may be frozen or overloaded")
            reply = codec.unpackb(sock.recv())
            if not isinstance(reply, dict):
                raise InternalError(f"malformed reply from the sidecar: {reply!r}")
            if reply.get("id") == rid:
                return reply
            if reply.get("id") is None and not reply.get("ok"):
                return reply  # the sidecar could not read our request at all
            # A stale reply to an earlier call on this thread: ignore it and keep waiting.

    def _socket(self) -> zmq.Socket:
        sock = getattr(self._local, "socket", None)
        if sock is None:
            if self._closed:
                raise Unavailable("this client is closed")
            sock = self._context.socket(zmq.DEALER)
            sock.linger = 0
            sock.immediate = True
            sock.connect(self.endpoint)
            self._local.socket = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def _discard_socket(self) -> None:
        sock = getattr(self._local, "socket", None)
        if sock is not None:
            self._local.socket = None
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)
            sock.close(0)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for sock in self._sockets:
                sock.close(0)
            self._sockets.clear()
        self._context.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
