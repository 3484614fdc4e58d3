"""Covers: bridge.py4j_tls, bridge.py4j_server, bridge.tls.

The Py4J front over TLS (python3.bridge.py4j.tls): a loop-served front with a throwaway CA's
certificate, spoken to by CPython ssl sockets that talk py4j's wire protocol, and by peers that
speak plain text, never finish the handshake, or send too much before authenticating.

Every wait has a deadline (socket timeouts, wait_until).
"""
from __future__ import annotations

import base64
import queue
import socket
import ssl
import threading
import time

import pytest

from bridge.py4j_server import Py4JFront
from bridge.tls import server_context
from sidecar.loop import Loop
from sidecar.testing import wait_until
from sidecar.testing_tls import make_test_certificates

TOKEN = "tls-front-token"
DEADLINE = 10.0
HANDSHAKE = 0.5  # the front's handshake deadline in these tests


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_test_certificates(tmp_path_factory.mktemp("py4j-tls"))


def echo(payload: bytes, reply) -> None:
    reply(payload)


class TlsFront:
    """A TLS Py4JFront in a Loop on its own thread, echoing every payload."""

    def __init__(self, certs, **options) -> None:
        self.loop = Loop()
        self.front = Py4JFront(self.loop, echo, python_port=0, auth_token=TOKEN,
                               max_message_bytes=8 << 20,
                               tls_context=server_context(str(certs.cert), str(certs.key)),
                               handshake_timeout=HANDSHAKE, **options)
        self.front.start()
        self.port = self.front.port
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def connections(self) -> int:
        box: queue.Queue = queue.Queue()
        self.loop.call_soon_threadsafe(lambda: box.put(len(self.front.connections)))
        return box.get(timeout=DEADLINE)

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(DEADLINE)
        self.front.stop()
        self.loop.close()


@pytest.fixture
def front(certs):
    f = TlsFront(certs)
    yield f
    f.stop()


def tls_socket(port: int, cafile, host: str = "127.0.0.1") -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cafile))  # hostname checked: IP SAN
    raw = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return context.wrap_socket(raw, server_hostname=host)


def read_line(sock: socket.socket) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("closed by the front")
        data += chunk
    return bytes(data[:-1])


def apply(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(payload) + b"\ne\n")
    answer = read_line(sock)
    assert answer.startswith(b"!yj"), answer[:100]
    return base64.b64decode(answer[3:])


def closed_by_front(sock: socket.socket) -> bytes:
    """What arrived before the front closed the connection (fails at the socket timeout)."""
    got = bytearray()
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return bytes(got)


def test_a_tls_peer_is_served_small_and_large_calls(front, certs):
    with tls_socket(front.port, certs.ca) as sock:
        sock.sendall(f"A\n{TOKEN}\ne\n".encode())
        assert read_line(sock) == b"!yv"
        assert apply(sock, b"hello") == b"hello"
        big = bytes(range(256)) * 8192  # 2 MiB: many TLS records in and out
        assert apply(sock, big) == big
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


def test_the_hostname_is_checked_by_the_client(front, certs):
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_socket(front.port, certs.ca, host="sidecar.elsewhere.example")
    with pytest.raises(ssl.SSLCertVerificationError):  # a CA that did not sign it
        tls_socket(front.port, certs.other_ca)


def test_a_plain_peer_of_the_tls_front_gets_nothing(front, certs, caplog):
    with socket.create_connection(("127.0.0.1", front.port), timeout=DEADLINE) as plain:
        plain.sendall(f"A\n{TOKEN}\ne\nc\nt\napply\nsrequest\njAA==\ne\n".encode())
        assert closed_by_front(plain) == b""
    assert wait_until(lambda: "sent plain text to the TLS front" in caplog.text, DEADLINE)
    assert TOKEN not in caplog.text
    with tls_socket(front.port, certs.ca) as sock:  # the front serves on
        sock.sendall(f"A\n{TOKEN}\ne\n".encode())
        assert read_line(sock) == b"!yv"


@pytest.mark.parametrize("opening", [b"", b"\x16\x03\x01\x02\x00\x01"],
                         ids=["silent", "half-a-client-hello"])
def test_a_peer_that_never_finishes_the_handshake_is_dropped_at_its_deadline(front, opening,
                                                                            caplog):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", front.port), timeout=DEADLINE) as peer:
        peer.sendall(opening)
        assert closed_by_front(peer) == b""
    took = time.monotonic() - started
    assert HANDSHAKE * 0.9 <= took < HANDSHAKE + 3.0, took
    assert "did not finish the TLS handshake within 0.5s" in caplog.text
    assert wait_until(lambda: front.connections() == 0, DEADLINE)


def test_an_unauthenticated_tls_peer_is_held_to_the_pre_auth_bound(front, certs, caplog):
    with tls_socket(front.port, certs.ca) as sock:
        try:
            sock.sendall(b"x" * (1 << 20))  # no newline, no token: cut off after ~4 KiB
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
        closed_by_front(sock)
    assert wait_until(lambda: "before authenticating" in caplog.text, DEADLINE)
    limit = front.front.pre_auth_limit
    assert f"over {limit} bytes before authenticating" in caplog.text and limit < 5000


def test_the_handshakes_count_against_the_connection_cap_and_give_way(certs):
    f = TlsFront(certs, max_connections=2)
    try:
        silent = [socket.create_connection(("127.0.0.1", f.port), timeout=DEADLINE)
                  for _ in range(2)]
        assert wait_until(lambda: f.connections() == 2, DEADLINE)
        with tls_socket(f.port, certs.ca) as sock:  # one silent handshake gives way
            sock.sendall(f"A\n{TOKEN}\ne\n".encode())
            assert read_line(sock) == b"!yv"
            assert apply(sock, b"in") == b"in"
        for s in silent:
            s.close()
    finally:
        f.stop()
