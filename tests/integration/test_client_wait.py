"""Covers: bridge.client.

The CPython client waits against one deadline: replies to other calls that keep
arriving do not start its wait again. The peer is a TEST DOUBLE of a sidecar (a pyzmq ROUTER on
loopback) that answers every request only with stale replies (another id), every 20 ms."""
from __future__ import annotations

import threading
import time

import msgpack
import pytest
import zmq

from bridge.client import Client, Unavailable

TIMEOUT, GRACE = 0.4, 0.4   # the client waits TIMEOUT + GRACE for its reply
SPAM_FOR = 6.0              # the double stops by itself (so the old, re-arming wait ends too)
SLACK = 1.0                 # scheduling on a loaded 2-core machine: a bound, not a speed figure


class StaleRepliesPeer:
    """Answers each request with a reply of another id, again and again, never its own."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        # A PLAIN server as a sidecar's front is (the client authenticates at the handshake).
        from zmq.auth.thread import ThreadAuthenticator

        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_plain(domain="*", passwords={"py3sidecar": "t"})
        self.sock.plain_server = True
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stale_sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        if not self.sock.poll(10_000):
            return
        peer, payload = self.sock.recv_multipart()
        rid = msgpack.unpackb(payload)["id"]
        until = time.monotonic() + SPAM_FOR
        while not self.stop.is_set() and time.monotonic() < until:
            stale = {"id": rid + 1000 + self.stale_sent, "ok": True, "value": "not yours"}
            self.sock.send_multipart([peer, msgpack.packb(stale)])
            self.stale_sent += 1
            self.stop.wait(0.02)  # the pace of the fault, not a synchronisation

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close(0)
        self.auth.stop()
        self.ctx.term()


@pytest.fixture
def peer():
    p = StaleRepliesPeer()
    yield p
    p.close()


def test_stale_replies_do_not_extend_the_wait(peer):
    client = Client(peer.endpoint, "t", timeout=TIMEOUT, grace=GRACE, connect_timeout=2.0)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="no reply from the sidecar"):
            client.execute("1 + 1")
        took = time.monotonic() - started
    finally:
        client.close()
    assert peer.stale_sent >= 5, peer.stale_sent  # the wait did see unrelated replies
    assert TIMEOUT + GRACE - 0.05 <= took <= TIMEOUT + GRACE + SLACK, took
