"""Covers: sidecar.unix_front.

The Unix-socket front on a real loop and real sockets: frames in and out, the peer's
credentials, the connection cap, refusing another user, an oversized frame answered (and the
whole requests before it still served), the socket file's mode and its stale predecessor, a
client that stops reading, and replies to a client that went away."""

from __future__ import annotations

import os
import socket
import stat
import struct
import time

import msgpack
import pytest

from bridge import protocol
from sidecar import unix_front
from sidecar.loop import Loop
from sidecar.unix_front import UnixFront

HEADER = struct.Struct(">I")


def frame(obj: object) -> bytes:
    data = msgpack.packb(obj)
    return HEADER.pack(len(data)) + data


def run_until(loop: Loop, cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    loop.run(until=lambda: cond() or time.monotonic() > deadline)
    assert cond(), "condition not reached within the deadline"


def peek(sock: socket.socket) -> bytes | None:
    """What waits on the socket now (b"" at its end), None while nothing does; never waits."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return None
    except OSError:
        return b""  # reset
    finally:
        sock.settimeout(timeout)


def readable(sock: socket.socket) -> bool:
    return bool(peek(sock))


def closed(sock: socket.socket) -> bool:
    return peek(sock) == b""


def read_frame(sock: socket.socket) -> dict:
    sock.settimeout(5)
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    (size,) = HEADER.unpack(head)
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return msgpack.unpackb(body)


@pytest.fixture
def front(tmp_path):
    loop = Loop()
    seen: list[tuple[bytes, str]] = []
    refusals: list[tuple[str, str]] = []

    def handler(payload, reply, peer):
        seen.append((payload, peer))
        request = msgpack.unpackb(payload)
        if request.get("silent"):
            front.pending.append(reply)
            return
        reply(msgpack.packb({"id": request.get("id"), "ok": True, "value": request.get("x")}))

    front = UnixFront(loop, handler, tmp_path / "sidecar.sock", max_message_bytes=1 << 20,
                      max_connections=2, on_refusal=lambda kind, peer: refusals.append(
                          (kind, peer)))
    front.seen, front.refusals, front.pending = seen, refusals, []
    front.start()
    yield front
    front.stop()
    loop.close()


def connect(front: UnixFront) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(front.path))
    return sock


def test_a_frame_is_dispatched_with_its_peer_and_answered(front):
    client = connect(front)
    client.sendall(frame({"id": 7, "x": "hello"}) + frame({"id": 8, "x": 2}))
    run_until(front.loop, lambda: len(front.seen) == 2 and readable(client))
    assert read_frame(client) == {"id": 7, "ok": True, "value": "hello"}
    assert read_frame(client) == {"id": 8, "ok": True, "value": 2}
    assert front.seen[0][1] == f"unix:pid={os.getpid()},uid={os.geteuid()}"
    assert front.endpoint == f"unix:{front.path}"


def test_the_socket_file_is_owner_only_and_removed_at_stop(front):
    mode = stat.S_IMODE(os.stat(front.path).st_mode)
    assert mode == 0o600, oct(mode)
    path = front.path
    front.stop()
    assert not path.exists()


def test_a_frame_above_the_limit_is_answered_and_the_connection_closed(front):
    client = connect(front)
    # a whole request first, in the same write: it is still served
    client.sendall(frame({"id": 1, "x": 1}) + HEADER.pack((1 << 20) + 1) + b"x" * 100)
    run_until(front.loop, lambda: len(front.seen) == 1 and not front.connections)
    assert read_frame(client) == {"id": 1, "ok": True, "value": 1}
    error = read_frame(client)["error"]
    assert error["kind"] == protocol.BAD_REQUEST
    assert f"{(1 << 20) + 1} bytes" in error["message"]
    assert "python3.bridge.max-message-size" in error["message"]
    assert client.recv(1) == b""  # then closed
    assert [kind for kind, _ in front.refusals] == [protocol.BAD_REQUEST]


def test_connections_beyond_the_cap_are_closed_and_counted(front):
    a, b = connect(front), connect(front)
    run_until(front.loop, lambda: len(front.connections) == 2)
    c = connect(front)
    run_until(front.loop, lambda: closed(c))
    assert [kind for kind, _ in front.refusals] == [protocol.OVERLOADED]
    assert len(front.connections) == 2
    a.close()
    run_until(front.loop, lambda: len(front.connections) == 1)
    d = connect(front)
    d.sendall(frame({"id": 3, "x": 3}))
    run_until(front.loop, lambda: readable(d))
    assert read_frame(d)["value"] == 3
    b.close()


def test_a_peer_of_another_user_is_refused_before_any_frame(front):
    front.uids = {os.geteuid() + 12345}  # as if we were someone else
    client = connect(front)
    client.sendall(frame({"id": 1, "x": 1}))
    run_until(front.loop, lambda: closed(client))
    assert front.seen == []
    assert front.refusals[0][0] == protocol.UNAUTHORIZED
    assert front.refusals[0][1].startswith(f"unix:pid={os.getpid()},")


def test_a_stale_socket_file_is_replaced_and_a_live_one_is_not_taken(front, tmp_path):
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # bound, never listening: what a killed sidecar leaves
    other = UnixFront(front.loop, front.handler, stale, 1 << 20)
    other.start()
    assert other.error == "" and other.listener is not None
    other.stop()
    taken = UnixFront(front.loop, front.handler, front.path, 1 << 20)
    taken.start()  # the fixture's front listens there
    assert taken.listener is None
    assert "another sidecar serves" in taken.error and "python3.bridge.unix.path" in taken.error
    assert front.path.exists()  # not removed by the one that could not start
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    refused = UnixFront(front.loop, front.handler, plain, 1 << 20)
    refused.start()
    assert "is not a socket" in refused.error and plain.read_text() == "x"


def test_a_reply_to_a_client_that_went_away_is_dropped(front):
    client = connect(front)
    client.sendall(frame({"id": 1, "silent": True}))
    run_until(front.loop, lambda: len(front.pending) == 1)
    client.close()
    run_until(front.loop, lambda: not front.connections)
    front.pending[0](msgpack.packb({"id": 1, "ok": True}))  # no error, nothing written


def test_a_client_that_stops_reading_is_closed_past_the_limit(front, monkeypatch):
    monkeypatch.setattr(unix_front, "OUT_LIMIT", 1 << 20)
    client = connect(front)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(frame({"id": 1, "silent": True}))
    run_until(front.loop, lambda: len(front.pending) == 1)
    conn = next(iter(front.connections))
    for _ in range(64):  # 64 x 256 KiB: far more than the socket buffers hold
        front.pending[0](b"y" * (256 << 10))
        if conn.closed:
            break
    assert conn.closed and conn not in front.connections


def test_with_a_token_group_the_socket_is_0660_in_it_and_its_members_may_connect(tmp_path):
    import grp

    group = grp.getgrgid(os.getgid())
    loop = Loop()
    front = UnixFront(loop, lambda payload, reply, peer: None, tmp_path / "g.sock", 1 << 20,
                      group=group.gr_name)
    front.start()
    try:
        st = os.stat(front.path)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group.gr_gid
        other = os.geteuid() + 12345
        front.uids = {other + 1}  # as if we were someone else: only the group lets us in
        assert front.allowed(os.getpid(), other, group.gr_gid)  # the primary group
        if os.getgroups():  # a supplementary group, read from /proc/<pid>/status
            front.gid = os.getgroups()[0]
            assert front.allowed(os.getpid(), other, -1)
        front.gid = max(os.getgroups() + [os.getgid()]) + 777  # a group we are not in
        assert not front.allowed(os.getpid(), other, -1)
        front.gid = None
        assert not front.allowed(os.getpid(), other, group.gr_gid)  # no token group: refused
    finally:
        front.stop()
        loop.close()
