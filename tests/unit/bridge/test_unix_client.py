"""Covers: bridge.unix_client.

``UnixLink`` against a scripted server on a real Unix socket (a thread): the reply that names
the request (a stale one stepped over), large replies, the deadline, a connection lost while
the reply is awaited, a connection the server closed between calls (sent again once, on a fresh
connection), and a sidecar that is not there."""

from __future__ import annotations

import socket
import struct
import threading
import time

import msgpack
import pytest

from bridge.protocol import Unavailable
from bridge.unix_client import CHUNK, UnixLink

HEADER = struct.Struct(">I")


def frame(obj: object) -> bytes:
    data = msgpack.packb(obj)
    return HEADER.pack(len(data)) + data


def read_frame(conn: socket.socket) -> dict | None:
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (size,) = HEADER.unpack(head)
    body = b""
    while len(body) < size:
        body += conn.recv(size - len(body))
    return msgpack.unpackb(body)


class Server:
    """Accepts connections; for each request calls ``script(request, conn)``."""

    def __init__(self, path: str, script) -> None:
        self.path = path
        self.script = script
        self.requests: list[dict] = []
        self.connections = 0
        self.hung_up = threading.Event()  # set each time the server has closed a connection
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(10)
            with conn:
                while (request := read_frame(conn)) is not None:
                    self.requests.append(request)
                    if self.script(request, conn) == "close":
                        break
            self.hung_up.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "s.sock")


def echo(request, conn):
    conn.sendall(frame({"id": request["id"], "ok": True, "value": request["x"]}))


def test_the_reply_naming_the_request_is_returned_a_stale_one_skipped(path):
    def script(request, conn):
        conn.sendall(frame({"id": request["id"] - 1, "ok": True, "value": "stale"}))
        echo(request, conn)

    server = Server(path, script)
    link = UnixLink(path, connect_timeout=1.0)
    assert link.exchange(msgpack.packb({"id": 5, "x": 1}), 5, 5.0)["value"] == 1
    assert link.exchange(msgpack.packb({"id": 6, "x": 2}), 6, 5.0)["value"] == 2
    assert server.connections == 1  # one connection for the thread's calls
    link.close()
    server.close()


def test_an_id_less_error_reply_is_returned(path):
    def script(request, conn):
        conn.sendall(frame({"id": None, "ok": False, "error": {"kind": "bad_request"}}))

    server = Server(path, script)
    reply = UnixLink(path, 1.0).exchange(msgpack.packb({"id": 1, "x": 0}), 1, 5.0)
    assert reply["error"]["kind"] == "bad_request"
    server.close()


def test_a_large_reply_arrives_whole(path):
    blob = bytes(range(256)) * ((5 * CHUNK) // 256 + 7)

    def script(request, conn):
        conn.sendall(frame({"id": request["id"], "ok": True, "value": blob}))

    server = Server(path, script)
    link = UnixLink(path, 1.0)
    request = msgpack.packb({"id": 1, "x": b"z" * (3 * CHUNK)})  # a large request too
    assert link.exchange(request, 1, 5.0)["value"] == blob
    assert server.requests[0]["x"] == b"z" * (3 * CHUNK)
    server.close()


def test_no_reply_by_the_deadline_is_unavailable_and_drops_the_connection(path):
    server = Server(path, lambda request, conn: None)  # reads, never answers
    link = UnixLink(path, 1.0)
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        link.exchange(msgpack.packb({"id": 1, "x": 0}), 1, 0.3)
    took = time.monotonic() - started
    assert 0.25 <= took < 2.0, took
    assert "within 0.3s" in info.value.message and info.value.details["sent"] is True
    assert link.sock is None  # a late reply can never be read as the next call's
    server.close()


def test_a_connection_lost_while_waiting_is_unavailable_with_unknown_effects(path):
    server = Server(path, lambda request, conn: "close")
    with pytest.raises(Unavailable) as info:
        UnixLink(path, 1.0).exchange(msgpack.packb({"id": 1, "x": 0}), 1, 5.0)
    assert "its effects are unknown" in info.value.message
    assert info.value.details["sent"] is True
    server.close()


def test_a_connection_closed_between_calls_is_replaced_and_the_request_sent_once(path):
    def script(request, conn):
        echo(request, conn)
        return "close"  # as a restarted sidecar: this connection is gone after one call

    server = Server(path, script)
    link = UnixLink(path, 1.0)
    assert link.exchange(msgpack.packb({"id": 1, "x": "a"}), 1, 5.0)["value"] == "a"
    assert server.hung_up.wait(5)
    # its end is closed: the send fails at once (EPIPE), nothing was delivered, so the request
    # goes out again on a fresh connection, once
    assert link.exchange(msgpack.packb({"id": 2, "x": "b"}), 2, 5.0)["value"] == "b"
    assert [r["id"] for r in server.requests] == [1, 2]
    assert server.connections == 2
    server.close()


def test_no_sidecar_is_unavailable_not_sent(path):
    with pytest.raises(Unavailable) as info:
        UnixLink(path, 1.0).exchange(msgpack.packb({"id": 1}), 1, 1.0)
    assert "is it running" in info.value.message and info.value.details["sent"] is False
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a file nobody listens on: what a killed sidecar leaves
    with pytest.raises(Unavailable) as info:
        UnixLink(path, 1.0).exchange(msgpack.packb({"id": 1}), 1, 1.0)
    assert info.value.details["sent"] is False
    dead.close()
