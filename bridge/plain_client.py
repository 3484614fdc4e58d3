"""The client's side of its lean ZeroMQ link (PLAIN over ``tcp://``): one exchange per call.

Owns: connecting (within ``connect_timeout``; while nothing listens yet, again every 0.1 s when
the caller is patient), sending a request, reading until the reply that names it, the deadline
of that wait, and telling what a failure means for the call: ``Unavailable`` with ``sent``
(False: the sidecar cannot have run it), ``Unauthorized``, ``BadRequest``. Must not touch: the
wire (``bridge.zmtp_plain``), request ids, failover and breakers (``bridge.client`` decides),
anything on the sidecar's side.

What a failure means: the sidecar's libzmq dispatches only a frame it received whole, so a send
that failed (the sidecar closed the connection since this thread's last call) delivered
nothing, and is made again once on a fresh connection. A connection lost while the reply is
awaited is ``Unavailable`` with "its effects are unknown"; no reply by the deadline drops the
connection (a late reply can never be taken for the next call's) and is ``Unavailable`` too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bridge import codec
from bridge.protocol import BadRequest, InternalError, Unauthorized, Unavailable
from bridge.zmq_auth import PLAIN_USERNAME
from bridge.zmtp_plain import LinkDown, PlainLink, Refused

# A sidecar's libzmq drops, without an answer, a peer that sends more than twice its
# python3.bridge.max-message-size. Requests at least this large are watched (a socket monitor
# on a libzmq link; the end of stream here), so such a drop fails the call at once
# (BadRequest) instead of at its deadline.
WATCH_SIZE = 64 << 10
RETRY_CONNECT = 0.1  # seconds between attempts while nothing listens (libzmq's reconnect-ivl)


def answers(reply: Any, rid: int) -> bool:
    """Whether ``reply`` is this call's: its id, or none on a failure (the sidecar could not
    read our request at all). Another id is a stale reply to an earlier call: skipped."""
    if not isinstance(reply, dict):
        raise InternalError(f"malformed reply from the sidecar: {reply!r}")
    return reply.get("id") == rid or (reply.get("id") is None and not reply.get("ok"))


def no_reply(endpoint: str, wait: float) -> str:
    return (f"no reply from the sidecar at {endpoint} within {wait:g}s; it may be frozen or "
            "overloaded")


def lost(endpoint: str) -> str:
    return (f"the connection to the sidecar at {endpoint} was lost while this call was running "
            "there; its effects are unknown")


def too_large(endpoint: str, size: int) -> str:
    return (f"the sidecar at {endpoint} closed the connection while this {size}-byte request "
            "was sent: it drops, without an answer, requests above twice its "
            "python3.bridge.max-message-size; send less data per call")


class LeanLink:
    """One thread's lean link to the sidecar at ``endpoint`` (one per thread, like the wire)."""

    __slots__ = ("endpoint", "wire", "connect_timeout", "refused", "shut")

    def __init__(self, endpoint: str, address: tuple[str, int], token: str,
                 connect_timeout: float, refused: Callable[[], Unauthorized]) -> None:
        self.endpoint = endpoint
        self.wire = PlainLink(address, PLAIN_USERNAME, token)
        self.connect_timeout = connect_timeout
        self.refused = refused  # the error for credentials refused at the handshake
        self.shut = False

    def exchange(self, payload: bytes, rid: int, wait: float,
                 patient: bool = True) -> dict[str, Any]:
        """Send ``payload``; the reply map naming ``rid`` (or an id-less error reply)."""
        wire = self.wire
        deadline = self._send(payload, wait, patient)
        try:
            while True:
                body = wire.recv(deadline)
                if body is None:
                    break
                reply = codec.unpackb(body)  # decoded before the next read: see recv
                if answers(reply, rid):
                    return reply
        except LinkDown:
            wire.close()
            if len(payload) >= WATCH_SIZE:
                raise BadRequest(too_large(self.endpoint, len(payload))) from None
            raise Unavailable(lost(self.endpoint), details={"sent": True}) from None
        wire.close()  # taken but never answered: a late reply cannot be the next call's
        raise Unavailable(no_reply(self.endpoint, wait), details={"sent": True})

    def _send(self, payload: bytes, wait: float, patient: bool) -> float:
        """Connected if need be, ``payload`` sent: the deadline of the reply's wait."""
        wire = self.wire
        for attempt in (1, 2):
            if not wire.idle_ok():  # never connected, or closed by the sidecar while idle
                self._connect(patient)
            deadline = time.monotonic() + wait
            try:
                wire.send(payload, deadline)
                return deadline
            except LinkDown:
                wire.close()  # a frame the sidecar did not get whole is never dispatched
                if len(payload) >= WATCH_SIZE:
                    raise BadRequest(too_large(self.endpoint, len(payload))) from None
                if time.monotonic() >= deadline:
                    raise Unavailable(f"the sidecar at {self.endpoint} did not take this "
                                      f"request within {wait:g}s; it may be frozen or "
                                      "overloaded", details={"sent": False}) from None
                if attempt == 2:
                    raise Unavailable(f"the sidecar at {self.endpoint} closed the connection "
                                      "before this request was delivered; is it running?",
                                      details={"sent": False}) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self, patient: bool) -> None:
        """The handshake done within ``connect_timeout``, or the reason it could not be."""
        deadline = time.monotonic() + self.connect_timeout
        while not self.shut:
            try:
                return self.wire.connect(deadline)
            except Refused:
                raise self.refused() from None
            except LinkDown as exc:
                left = deadline - time.monotonic()
                if not (exc.refused and patient and left > 0):
                    if exc.refused and not patient:
                        raise Unavailable(f"the sidecar at {self.endpoint} refused the "
                                          "connection; is it running?",
                                          details={"sent": False}) from None
                    raise Unavailable(f"cannot reach the sidecar at {self.endpoint} within "
                                      f"{self.connect_timeout:g}s ({exc}); is it running "
                                      "(`py3sidecar serve`)?", details={"sent": False}) from None
            time.sleep(min(RETRY_CONNECT, left))  # nothing listens yet: try again shortly
        raise Unavailable("this client is closed", details={"sent": False})

    def close(self) -> None:
        """For good (the client is closed): the link never connects again."""
        self.shut = True
        self.wire.close()
