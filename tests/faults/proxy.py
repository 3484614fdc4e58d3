"""A fault-injecting TCP proxy for tests: real sockets between a caller and a sidecar.

Owns: a loopback listening socket, the connection pairs it forwards (caller <-> upstream),
and the faults it injects on them. Must not touch: the sidecar or the caller (it only moves
bytes, and delays, holds, drops or resets them).

    caller --tcp--> FaultProxy(127.0.0.1:port) --tcp--> sidecar (upstream)
                     per pair: two pump threads (request: caller->upstream, reply: back)

Faults (all applied to live connections, and to new ones while they last):
- ``latency(seconds)``: every chunk waits that long before it is forwarded (0: off).
- ``stall()`` / ``heal()``: forwarding stops, bytes wait in the proxy and the kernels; ``heal``
  delivers them, in order.
- ``half_open()``: the peer vanishes without FIN or RST: every current connection (and every
  one accepted until ``heal``) swallows what it gets and is never closed. ``heal`` only makes
  NEW connections work again, as when a vanished host comes back: the old ones stay dead.
- ``reset_next(direction)``: the next chunk of at least ``min_bytes`` going ``"request"`` or
  ``"reply"`` is cut in half: the first half is forwarded, then both sides get an RST.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

REQUEST, REPLY = "request", "reply"


class _Pair:
    __slots__ = ("caller", "upstream", "dead", "cut")

    def __init__(self, caller: socket.socket, upstream: socket.socket, dead: bool) -> None:
        self.caller, self.upstream, self.dead = caller, upstream, dead
        self.cut = False  # reset by the proxy: the other pump must not pass a FIN on first


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN.

    SHUT_RD first: the other pump thread may be blocked in recv() on this socket, and Linux
    defers a close() (and so the RST) until that recv returns; SHUT_RD wakes it (recv gives
    b"") and sends the peer nothing. Without it the RST goes out only when the peer next sends.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (host, port), with faults on demand."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._latency = 0.0
        self._stalled = False
        self._vanished = False
        self._reset_armed: tuple[str, int] | None = None
        self.resets = 0
        self.accepted = 0
        self._pairs: list[_Pair] = []
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy-accept",
                                          daemon=True)
        self._acceptor.start()

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ faults
    def latency(self, seconds: float) -> None:
        self._latency = seconds

    def stall(self) -> None:
        with self._cond:
            self._stalled = True

    def half_open(self) -> None:
        with self._cond:
            self._vanished = True
            for pair in self._pairs:
                pair.dead = True

    def heal(self) -> None:
        with self._cond:
            self._stalled = False
            self._vanished = False
            self._latency = 0.0
            self._reset_armed = None
            self._cond.notify_all()

    def reset_next(self, direction: str, min_bytes: int = 24) -> None:
        """Arms one mid-frame reset (ZMTP heartbeats and py4j's short lines are smaller)."""
        assert direction in (REQUEST, REPLY), direction
        with self._cond:
            self._reset_armed = (direction, min_bytes)

    def wait_reset(self, count: int, timeout: float) -> bool:
        """True once ``count`` armed resets have fired (within ``timeout`` seconds)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.resets >= count, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._stalled = False
            pairs, self._pairs = self._pairs, []
            self._cond.notify_all()
        self._listener.close()
        for pair in pairs:
            for sock in (pair.caller, pair.upstream):
                _reset(sock)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ forwarding
    def _accept(self) -> None:
        while True:
            try:
                caller, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(caller)  # upstream down: the caller sees a refused/reset connection
                continue
            for sock in (caller, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._closed:
                    _reset(caller)
                    _reset(upstream)
                    return
                pair = _Pair(caller, upstream, dead=self._vanished)
                self._pairs.append(pair)
                self.accepted += 1
            for src, dst, direction in ((caller, upstream, REQUEST), (upstream, caller, REPLY)):
                threading.Thread(target=self._pump, args=(pair, src, dst, direction),
                                 name=f"fault-proxy-{direction}", daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    if not pair.dead and not pair.cut:
                        dst.shutdown(socket.SHUT_WR)  # pass the FIN on
                    return
                if pair.dead:
                    continue  # vanished peer: swallowed, never answered, never closed
                with self._cond:
                    self._cond.wait_for(lambda: not self._stalled or self._closed)
                    armed = self._reset_armed
                    cut = armed is not None and armed[0] == direction and len(data) >= armed[1]
                    if cut:
                        self._reset_armed = None
                if pair.dead or self._closed:
                    continue
                if self._latency:
                    time.sleep(self._latency)  # the fault itself, not a synchronisation
                if cut:
                    dst.sendall(data[:len(data) // 2])
                    pair.cut = True
                    _reset(pair.caller)
                    _reset(pair.upstream)
                    with self._cond:
                        self.resets += 1
                        self._cond.notify_all()
                    return
                dst.sendall(data)
        except OSError:
            # One side is gone: reset the other, as a real middlebox's broken flow would look.
            if not pair.dead:
                _reset(pair.caller)
                _reset(pair.upstream)
