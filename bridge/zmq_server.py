"""The ZeroMQ ROUTER front: one frame in, one envelope to ``Service.dispatch``, one frame out.

Owns: the ROUTER socket, routing envelopes (DEALER ``[id, payload]`` and REQ
``[id, "", payload]`` peers), a hard size cap enforced by libzmq, and switching on the handshake's
mechanism (``bridge.zmq_auth``: PLAIN or CURVE, so an unauthenticated peer's messages never reach
it). Must not touch: the envelope's meaning (the service decides), workers. Runs in the
sidecar's loop thread (the ZAP handler runs in its own, once per connection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq

from bridge import protocol
from bridge.codec import pack_raw
from bridge.zmq_auth import ServerSecurity

log = logging.getLogger("py3sidecar.zmq")

# (payload, reply, peer): the peer is "zmq:tcp://ADDRESS", for the audit log.
Handler = Callable[[bytes, Callable[[bytes], None], str], None]

BATCH = 64  # requests taken per loop turn, so worker replies are never starved
PEERS_KEPT = 4096  # routing ids whose peer address is remembered (then forgotten at once)
_NOBLOCK, _SNDMORE_NOBLOCK = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)
_EVENTS, _RCVMORE, _POLLIN = int(zmq.EVENTS), int(zmq.RCVMORE), int(zmq.POLLIN)
_zmq_get = zmq.backend.Socket.get  # the backend's getsockopt: an int, no enum built


class ZmqFront:
    def __init__(self, loop, handler: Handler, endpoint: str, max_message_bytes: int,
                 context: zmq.Context | None = None,
                 security: ServerSecurity | None = None,
                 on_refusal: Callable[[str, str], None] | None = None) -> None:
        self.loop = loop
        self.security = security  # None: NULL (tests of the bare front only)
        if security is not None and on_refusal is not None:
            # A handshake refused by ZAP (its own thread): counted and audited in the loop.
            security.on_refusal = lambda kind, peer: loop.call_soon_threadsafe(
                lambda: on_refusal(kind, peer))
        self.handler = handler
        self.endpoint = endpoint
        self.max_message_bytes = max_message_bytes
        self.context = context or zmq.Context.instance()
        self.socket: zmq.Socket | None = None
        self.dropped_replies = 0
        self.peers: dict[bytes, str] = {}  # routing id -> peer, for libzmq's own ids only
        # (kind, peer) of a refusal made here, before any envelope is read: audited
        self.on_refusal = on_refusal or (lambda kind, peer: None)

    def start(self) -> None:
        sock = self.context.socket(zmq.ROUTER)
        sock.linger = 0
        # Far larger than the limit answered with `bad_request`: libzmq drops a peer that sends
        # more than this before we ever see it, so nobody can make us buffer gigabytes.
        sock.maxmsgsize = self.max_message_bytes * 2 + (1 << 16)
        sock.sndhwm = sock.rcvhwm = 10000
        if self.security is not None:
            self.security.start(self.context)  # the ZAP handler first: it must answer at once
            self.security.apply(sock)
        sock.bind(self.endpoint)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.socket = sock
        self.loop.add_reader(sock, self.on_readable, tells_sends=True)  # see replier
        log.info("ZeroMQ front listening on %s (%s)", self.endpoint,
                 self.security.mechanism if self.security is not None else "NULL")

    def stop(self, flush: float = 1.0) -> None:
        """Stop listening. Replies already handed to libzmq (the last calls a drain answered)
        still go out: the socket lingers up to ``flush`` seconds for them, never longer."""
        if self.socket is not None:
            self.loop.remove_reader(self.socket)
            self.socket.close(linger=int(flush * 1000))
            self.socket = None
        if self.security is not None:
            self.security.stop()

    def on_readable(self) -> bool:
        """Serve up to BATCH waiting messages; True when more are waiting after them (the
        loop's turn must not block). The loop called this because ``ZMQ_EVENTS`` said POLLIN,
        so the first receive finds a message; after each one ``ZMQ_EVENTS`` (read after the
        reply may have been sent) says whether another waits: no failing receive, no
        ``zmq.Again`` raised per call."""
        sock = self.socket
        receive, handler, replier = self.receive, self.handler, self.replier
        for _ in range(BATCH):
            if sock is None or sock.closed:
                return False
            try:
                frames, peer = receive(sock)
            except zmq.Again:
                return False
            if len(frames) >= 3 and frames[1] == b"":
                route, body = frames[:2], frames[2:]  # a REQ peer
            else:
                route, body = frames[:1], frames[1:]  # a DEALER peer
            reply = replier(route)
            if len(body) != 1:
                self.on_refusal(protocol.BAD_REQUEST, peer)
                reply(pack_raw(protocol.error_reply(
                    None, protocol.BAD_REQUEST,
                    f"expected exactly one frame holding a msgpack envelope, got {len(body)}")))
            else:
                handler(body[0], reply, peer)
            sock = self.socket
            if sock is None or sock.closed or not _zmq_get(sock, _EVENTS) & _POLLIN:
                return False
        return True

    def receive(self, sock: zmq.Socket) -> tuple[list[bytes], str]:
        """One message and its peer (libzmq's ``Peer-Address`` of the connection). The address
        needs a frame received without copying, which costs; it is remembered per routing id,
        so the common case costs one dict lookup. Only ids libzmq made (a leading zero byte,
        unique for the socket's life) are remembered: an id a peer chose may be reused by
        another peer after a reconnect. (pyzmq's backend getsockopt: an int, not the sugar's
        enum.)"""
        first = sock.recv(_NOBLOCK)
        frames, peer = [first], self.peers.get(first)
        if peer is None and _zmq_get(sock, _RCVMORE):
            frame = sock.recv(_NOBLOCK, copy=False)
            peer = self.peer_of(frame)
            if first[:1] == b"\x00":
                if len(self.peers) >= PEERS_KEPT:
                    self.peers.clear()
                self.peers[first] = peer
            frames.append(frame.bytes)
        while _zmq_get(sock, _RCVMORE):
            frames.append(sock.recv(_NOBLOCK))
        return frames, peer or "zmq:unknown"

    def peer_of(self, frame: zmq.Frame) -> str:
        try:
            address = frame.get("Peer-Address")
        except zmq.ZMQError:  # ipc://, inproc://: no address to tell
            return f"zmq:{self.endpoint.split(':', 1)[0]}"
        return f"zmq:tcp://[{address}]" if ":" in address else f"zmq:tcp://{address}"

    def replier(self, route: list[bytes]) -> Callable[[bytes], None]:
        def reply(data: bytes) -> None:
            sock = self.socket
            if sock is None:
                return
            try:
                # frame by frame with plain ints: send_multipart's checks and flag enums cost
                # more than the sends (a DEALER route is one frame, a REQ route two)
                send = sock.send
                for frame in route:
                    send(frame, _SNDMORE_NOBLOCK)
                send(data, _NOBLOCK)
            except zmq.Again:
                self.dropped_replies += 1
                log.warning("reply dropped: the client's queue is full (it stopped reading)")
            finally:
                self.loop.sent_on(sock)  # a send may take in news: events read next turn
        return reply
