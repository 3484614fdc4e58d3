"""Py4J front of the sidecar: the gateway's Jython calls `apply(method, payload_bytes) -> bytes`.

Who listens, who connects (found by experiment with py4j 0.10.9.9, Jython 2.7.3, Java 17):

* Only this (CPython) side listens: py4j's `PythonServer` on `python_port` (default 25334,
  loopback). The JVM side is a `py4j.ClientServer` built with
  `ClientServerBuilder().pythonPort(P).authToken(T).autoStartJavaServer(False)`: it starts no
  Java server and binds no port inside the gateway; `getPythonServerEntryPoint([BiFunction])`
  gives a proxy, and every JVM thread that calls it opens its own socket to `python_port`
  (py4j's pinned-thread model), answered here by a thread of its own.
* The sidecar never calls into the JVM (it sends and receives bytes only), so `java_port` is
  never connected to; it is kept only for py4j's parameters. Java memory management is off on
  both sides so nothing tries to reach the JVM.
* Start order does not matter. The JVM can build its ClientServer while the sidecar is down:
  a call then fails at once ("Error while obtaining a new communication channel", ~10-30 ms
  including the failed connect). When the sidecar restarts, each JVM thread's stale socket fails
  exactly one call ("Error while sending a command"), after which py4j reconnects by itself; the
  Jython library rebuilds its ClientServer on such a failure so that other threads do not each
  trip over their stale socket.
* Auth: py4j's own token (`PythonParameters(auth_token=...)`); a JVM with a wrong or missing
  token cannot open a channel (py4j closes the connection).

Measured (2-core CI-like VM, where a bare in-process loopback TCP round trip is ~136 us):
bare Jython -> CPython `apply()` echo of a small byte[] ~126-185 us median.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: The only method name the entry point accepts; the payload is one request envelope.
METHOD = "request"


def _error_reply(kind: str, message: str) -> bytes:
    import msgpack

    return msgpack.packb(
        {"id": None, "ok": False,
         "error": {"kind": kind, "type": None, "message": message, "traceback": None}},
        use_bin_type=True,
    )


class _EntryPoint:
    """The object the JVM sees as a java.util.function.BiFunction<String, byte[], byte[]>."""

    def __init__(self, handler: Callable[[bytes], bytes]):
        self._handler = handler

    def apply(self, method, payload):  # called on a py4j connection thread
        if method != METHOD:
            return _error_reply("bad_request",
                                f"unknown py4j method {method!r} (expected {METHOD!r})")
        if not isinstance(payload, (bytes, bytearray)):
            return _error_reply("bad_request",
                                "payload must be a byte[] holding a msgpack envelope")
        try:
            reply = self._handler(bytes(payload))
        except Exception as exc:  # the handler must not raise; never let py4j see it
            log.exception("py4j handler raised")
            return _error_reply("internal", f"sidecar handler failed: {exc}")
        return bytes(reply)

    def toString(self):
        return "py3sidecar Py4J entry point"

    class Java:
        implements = ["java.util.function.BiFunction"]


def _unblock(server) -> None:
    """Shut down the socket of every live connection of a py4j PythonServer (wakes its reader)."""
    for conn in list(getattr(server, "connections", ()) or ()):
        sock = getattr(conn, "socket", None)
        if sock is None:
            continue
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Py4JFront:
    """Serves `handler(payload: bytes) -> bytes` to JVM clients over py4j.

    `handler` must be thread-safe and must always return an encoded reply envelope.
    `python_port=0` picks a free port (read it from `.port` after `start()`).
    """

    def __init__(self, handler: Callable[[bytes], bytes], host: str = "127.0.0.1",
                 java_port: int = 25333, python_port: int = 25334,
                 auth_token: str | None = None):
        self.handler = handler
        self.host = host
        self.java_port = java_port
        self.python_port = python_port
        self.auth_token = auth_token
        self._cs = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``tcp://host:port`` (the bound port once started), for logs and loopback checks."""
        return f"tcp://{self.host}:{self.port if self._cs is not None else self.python_port}"

    @property
    def port(self) -> int | None:
        """The port actually listened on (differs from python_port when that was 0)."""
        cs = self._cs
        if cs is None:
            return None
        return cs.get_callback_server().get_listening_port()

    def start(self) -> None:
        from py4j.clientserver import ClientServer, JavaParameters, PythonParameters

        with self._lock:
            if self._cs is not None:
                return
            java = JavaParameters(address=self.host, port=self.java_port,
                                  auth_token=self.auth_token,
                                  eager_load=False, enable_memory_management=False,
                                  auto_convert=False)
            python = PythonParameters(address=self.host, port=self.python_port,
                                      auth_token=self.auth_token, daemonize=True,
                                      daemonize_connections=True, eager_load=True,
                                      accept_timeout=0.5)
            # py4j logs every command at INFO: keep that off the hot path (and out of the log).
            logging.getLogger("py4j").setLevel(logging.WARNING)
            # py4j's server and connection threads (which inherit the server thread's mask) must
            # never take SIGTERM/SIGINT: a signal delivered to one of them does not interrupt the
            # loop thread's poll, and the sidecar would not stop.
            blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
            try:
                self._cs = ClientServer(java_parameters=java, python_parameters=python,
                                        python_server_entry_point=_EntryPoint(self.handler))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            log.info("py4j front listening on %s:%s", self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops listening and closes every JVM connection (bounded by ``timeout``).

        py4j's own shutdown closes each connection's stream while that connection's thread is
        blocked reading it, and CPython's buffered reader then waits for the read to end (for
        as long as the JVM keeps the socket open, i.e. forever). So the sockets are shut down
        first, which ends those reads at once, and again while shutdown runs (a connection
        accepted in between), with a deadline.
        """
        with self._lock:
            cs, self._cs = self._cs, None
        if cs is None:
            return
        server = cs.get_callback_server()

        def shutdown() -> None:
            try:
                cs.shutdown()
            except Exception:  # shutdown of a half-dead server must not raise out of stop()
                log.exception("py4j front shutdown failed")

        worker = threading.Thread(target=shutdown, name="py4j-front-stop", daemon=True)
        _unblock(server)
        worker.start()
        deadline = time.monotonic() + timeout
        while True:
            worker.join(0.05)
            if not worker.is_alive():
                return
            if time.monotonic() >= deadline:
                log.warning("py4j front: shutdown did not finish within %gs", timeout)
                return
            _unblock(server)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
