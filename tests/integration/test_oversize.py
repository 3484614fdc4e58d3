"""Covers: bridge.zmq_server, bridge.py4j_server, bridge.preauth.

Far too large requests: above twice python3.bridge.max-message-size the
ZeroMQ transport drops the peer without an answer, so the CPython client notices the drop and
fails at once; the Py4J front answers `bad_request` and keeps the connection. Never at the
call's deadline."""

import base64
import socket
import threading

import msgpack
import pytest

from bridge.client import BadRequest, Client
from sidecar.testing import SidecarProcess

CALL_TIMEOUT = 120.0  # the call's own deadline: the failure must come long before it
WAIT = 30.0           # how long the test waits for that failure


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    with SidecarProcess({"bridge": {"max-message-size": "64KiB"}, "pool": {"initial-size": 1},
                         "health": {"enabled": False}},
                        workdir=str(tmp_path_factory.mktemp("oversize"))) as p:
        yield p


def run_with_deadline(fn):
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn()
        except Exception as exc:  # asserted by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), f"still waiting after {WAIT}s (its deadline is {CALL_TIMEOUT}s)"
    return outcome


@pytest.mark.parametrize("endpoints", ["one", "two"])
def test_zmq_client_fails_at_once_when_the_transport_drops_a_huge_request(proc, endpoints):
    targets = [proc.endpoint] if endpoints == "one" else [proc.endpoint, proc.endpoint]
    client = Client(targets, proc.token, timeout=CALL_TIMEOUT)
    try:
        outcome = run_with_deadline(
            lambda: client.execute("len(x)", {"x": "c" * 1_000_000}))
        error = outcome.get("error")
        assert isinstance(error, BadRequest), outcome
        assert "max-message-size" in error.message and "send less data" in error.message
        # the sidecar and this client's breaker are fine: the next call goes through
        assert client.execute("1+1").value == 2
    finally:
        client.close()


def py4j_connect(proc) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proc.py4j_port), timeout=WAIT)
    sock.sendall(f"A\n{proc.token}\ne\n".encode())
    assert read_line(sock) == b"!yv"
    return sock


_BUFFERS: dict[int, bytearray] = {}


def read_line(sock: socket.socket) -> bytes:
    buf = _BUFFERS.setdefault(sock.fileno(), bytearray())
    while b"\n" not in buf:
        data = sock.recv(1 << 20)
        if not data:
            raise EOFError("the front closed the connection")
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


def py4j_apply(sock: socket.socket, payload: bytes) -> dict:
    sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(payload) + b"\ne\n")
    answer = read_line(sock)
    assert answer.startswith(b"!yj"), answer[:200]
    return msgpack.unpackb(base64.b64decode(answer[3:]), raw=False)


def test_py4j_front_answers_a_huge_request_with_bad_request(proc):
    sock = py4j_connect(proc)
    try:
        huge = msgpack.packb({"v": 1, "id": 5, "token": proc.token, "op": "execute",
                              "code": "len(x)", "vars": {"x": "c" * 1_000_000}})
        outcome = run_with_deadline(lambda: py4j_apply(sock, huge))
        reply = outcome.get("value")
        assert reply is not None, outcome
        assert reply["error"]["kind"] == "bad_request"
        assert "max-message-size" in reply["error"]["message"]
        ok = py4j_apply(sock, msgpack.packb({"v": 1, "id": 6, "token": proc.token,
                                             "op": "execute", "code": "2+2"}))
        assert ok["ok"] and ok["value"] == 4  # the same connection serves on
    finally:
        sock.close()
