"""Covers: bridge.zmtp_plain, bridge.plain_client, bridge.client.

The client's lean link against a real libzmq ROUTER on loopback (a PLAIN server with a ZAP
authenticator, as a sidecar's front is): the handshake, short, long and larger-than-scratch
frames both ways, a refused password, a server of another mechanism, the deadline of a wait, a
server that closes the link while idle or while a reply is awaited; and through the Client, a
late reply to a timed-out call that never reaches the next call, a breaker probe that always
reports, a closed client that stays closed.
"""

from __future__ import annotations

import threading
import time

import msgpack
import pytest
import zmq
from zmq.auth.thread import ThreadAuthenticator

from bridge.breaker import BreakerConfig, BreakerState
from bridge.client import Client, InternalError, Unauthorized, Unavailable
from bridge.zmq_auth import PLAIN_USERNAME
from bridge.zmtp_plain import LinkDown, PlainLink, Refused, tcp_address
from sidecar.testing import wait_until

PASSWORD = "right-token"
SLACK = 1.0  # scheduling on a loaded machine: a bound, not a speed figure


class Router:
    """A libzmq ROUTER (PLAIN server unless ``plain=False``) on a free loopback port."""

    def __init__(self, plain: bool = True) -> None:
        self.ctx = zmq.Context()
        self.auth = None
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        if plain:
            self.auth = ThreadAuthenticator(self.ctx)
            self.auth.start()
            self.auth.configure_plain(domain="*", passwords={PLAIN_USERNAME: PASSWORD})
            self.sock.plain_server = True
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = tcp_address(self.endpoint)

    def recv(self, timeout: float = 5.0) -> tuple[bytes, bytes]:
        assert self.sock.poll(int(timeout * 1000)), "no request reached the router"
        peer, payload = self.sock.recv_multipart()
        return peer, payload

    def close(self) -> None:
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()


@pytest.fixture
def router():
    r = Router()
    yield r
    r.close()


def connected(router: Router, password: str = PASSWORD) -> PlainLink:
    link = PlainLink(router.address, PLAIN_USERNAME, password)
    link.connect(time.monotonic() + 5)
    return link


def test_endpoints_it_takes_and_the_ones_left_to_libzmq():
    assert tcp_address("tcp://127.0.0.1:5557") == ("127.0.0.1", 5557)
    assert tcp_address("tcp://[::1]:5557") == ("::1", 5557)
    assert tcp_address("tcp://localhost:1") == ("localhost", 1)
    for other in ("ipc:///tmp/x", "tcp://*:5557", "tcp://eth0;127.0.0.1:5", "tcp://host",
                  "tcp://:5", "inproc://a"):
        assert tcp_address(other) is None, other


@pytest.mark.parametrize("size", [3, 300, 20_000, 200_000])  # short, long, > scratch
def test_messages_both_ways_after_the_plain_handshake(router, size):
    link = connected(router)
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    link.send(payload, time.monotonic() + 5)
    peer, got = router.recv()
    assert got == payload
    router.sock.send_multipart([peer, payload[::-1]])
    assert link.recv(time.monotonic() + 5) == payload[::-1]
    assert link.idle_ok()
    link.close()


def test_messages_that_arrive_together_come_out_one_by_one(router):
    link = connected(router)
    link.send(b"hello", time.monotonic() + 5)
    peer, _ = router.recv()
    for body in (b"first", b"x" * 300, b"third"):  # a short, a long and a short frame
        router.sock.send_multipart([peer, body])
    wait_until(lambda: link.poller.poll(0), 5, message="replies arrived")  # likely all three
    got = [bytes(link.recv(time.monotonic() + 5)) for _ in range(3)]
    assert got == [b"first", b"x" * 300, b"third"]
    link.close()


def test_pings_are_answered_while_a_reply_is_awaited(router):
    """A ROUTER with heartbeats drops a peer that stays silent after its PING: the link's
    PONGs keep it (libzmq would close it within heartbeat-timeout otherwise)."""
    router.sock.close(0)
    router.sock = router.ctx.socket(zmq.ROUTER)
    router.sock.linger = 0
    router.sock.plain_server = True
    router.sock.heartbeat_ivl, router.sock.heartbeat_timeout = 50, 300
    router.sock.bind("tcp://127.0.0.1:0")  # a new port: the old one closes asynchronously
    router.address = tcp_address(router.sock.getsockopt_string(zmq.LAST_ENDPOINT))
    link = connected(router)
    assert link.recv(time.monotonic() + 0.8) is None  # many PINGs went by, each answered
    link.send(b"still here?", time.monotonic() + 5)
    peer, got = router.recv()
    router.sock.send_multipart([peer, b"yes"])
    assert bytes(link.recv(time.monotonic() + 5)) == b"yes"
    link.close()


def test_a_wrong_password_is_refused_at_the_handshake(router):
    link = PlainLink(router.address, PLAIN_USERNAME, "wrong")
    with pytest.raises(Refused):
        link.connect(time.monotonic() + 5)
    assert link.sock is None


def test_a_server_of_another_mechanism_is_no_link():
    null = Router(plain=False)
    try:
        link = PlainLink(null.address, PLAIN_USERNAME, PASSWORD)
        # libzmq may reset the connection before its greeting (naming NULL) is read
        with pytest.raises(LinkDown, match="uses NULL, not PLAIN|closed|reset"):
            link.connect(time.monotonic() + 5)
        assert link.sock is None
    finally:
        null.close()


def test_nothing_listening_is_a_refused_connection():
    free = Router(plain=False)
    address = free.address
    free.close()
    with pytest.raises(LinkDown) as info:
        PlainLink(address, PLAIN_USERNAME, PASSWORD).connect(time.monotonic() + 5)
    assert info.value.refused


def test_a_wait_ends_at_its_deadline(router):
    link = connected(router)
    started = time.monotonic()
    assert link.recv(started + 0.2) is None
    assert 0.2 <= time.monotonic() - started < 0.2 + SLACK
    link.close()


def test_a_link_closed_by_the_server_is_seen_idle_and_while_waiting(router):
    idle = connected(router)
    waiting = connected(router)
    waiting.send(b"request", time.monotonic() + 5)
    router.recv()
    router.sock.close(0)  # both connections end
    started = time.monotonic()
    with pytest.raises(LinkDown):
        waiting.recv(time.monotonic() + 10)
    assert time.monotonic() - started < SLACK  # at once, not at the deadline
    wait_until(lambda: not idle.idle_ok(), 5, interval=0.01, message="the idle link's end")
    idle.close()
    waiting.close()


def test_the_client_never_returns_a_late_reply_to_the_next_call(router):
    """Call 1 times out; its reply arrives later, just before call 2's: call 2 gets its own."""
    client = Client(router.endpoint, PASSWORD, timeout=0.2, grace=0.1)
    answered = threading.Event()

    def serve() -> None:
        peer1, first = router.recv()
        peer2, second = router.recv(10)  # call 2, on a fresh link
        for peer, payload in ((peer1, first), (peer2, second)):
            rid = msgpack.unpackb(payload)["id"]
            router.sock.send_multipart([peer, msgpack.packb(
                {"id": rid, "ok": True, "value": f"reply to {rid}"})])
        answered.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(Unavailable, match="no reply"):
        client.call("operator:add", 1, 2)
    client.breakers[router.endpoint].reset()  # the client's breaker opened: not under test
    second = client.call("operator:add", 3, 4, timeout=5)
    assert second == "reply to 2"
    assert answered.wait(5)
    client.close()
    thread.join(5)


def test_the_client_tells_a_refused_token_at_once(router):
    started = time.monotonic()
    with pytest.raises(Unauthorized, match="handshake"):
        Client(router.endpoint, "wrong", timeout=5, connect_timeout=3).call("operator:add")
    assert time.monotonic() - started < SLACK


def test_a_probe_ended_by_a_malformed_reply_gives_its_permit_back(router):
    """The client's breaker, half open, lets one probe through: a probe that ends in an error
    that says nothing of the sidecar's health (a malformed reply) still reports, so the next
    call is let through instead of being refused by a probe slot nobody gives back."""
    fast = BreakerConfig(failure_threshold=1, failure_rate_threshold=1.0, window_size=1,
                         minimum_calls=1, open_timeout=0.05, half_open_max_probes=1,
                         success_threshold=1)
    client = Client(router.endpoint, PASSWORD, timeout=0.2, grace=0.1, breaker=fast)
    breaker = client.breakers[router.endpoint]

    def serve() -> None:
        router.recv()  # call 1: never answered
        peer, _ = router.recv(10)  # the probe: a reply that is not a map
        router.sock.send_multipart([peer, msgpack.packb([1, 2])])
        peer, payload = router.recv(10)  # call 3
        rid = msgpack.unpackb(payload)["id"]
        router.sock.send_multipart([peer, msgpack.packb({"id": rid, "ok": True, "value": 3})])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(Unavailable, match="no reply"):
        client.call("operator:add", 1, 2)
    wait_until(lambda: breaker.state == BreakerState.HALF_OPEN, 5, message="half open")
    with pytest.raises(InternalError, match="malformed reply"):
        client.call("operator:add", 1, 2, timeout=5)
    assert client.call("operator:add", 1, 2, timeout=5) == 3
    client.close()
    thread.join(5)


def test_a_closed_client_does_not_connect_again(router):
    client = Client(router.endpoint, PASSWORD, timeout=5)
    link = client._link(router.endpoint)  # this thread's link, as a call made it
    client.close()
    assert link.wire.sock is None
    with pytest.raises(Unavailable, match="closed"):
        client.call("operator:add", 1, 2)


def test_libzmq_true_keeps_the_libzmq_dealer_for_plain(router):
    """``Client(libzmq=True)``: the way back to libzmq's DEALER (and the lean link's peer in
    benchmarks/cpu_per_call.py) serves the same call."""
    from bridge.plain_client import LeanLink
    from bridge.zmq_link import ZmqLink

    def answer_one() -> None:
        peer, payload = router.recv()
        rid = msgpack.unpackb(payload)["id"]
        router.sock.send_multipart([peer, msgpack.packb({"id": rid, "ok": True, "value": 5})])

    for libzmq, kind in ((False, LeanLink), (True, ZmqLink)):
        client = Client(router.endpoint, PASSWORD, timeout=5, libzmq=libzmq)
        server = threading.Thread(target=answer_one)
        server.start()
        try:
            assert client.call("operator:add", 2, 3) == 5
            assert isinstance(client._link(router.endpoint), kind)
        finally:
            server.join(10)
            client.close()
