"""Covers: bridge.py4j_server, bridge.py4j_wire, bridge.py4j_connection.

The loop-served Py4J front (bridge/py4j_server.py) spoken to over raw sockets: py4j's wire
protocol as the JVM's ClientServer speaks it, and what hostile or vanishing peers get.

The first part runs the front in a Loop on a thread with a handler the test controls (replies
held back, released in any order); the second part talks to a real sidecar (the shared fixture).
Every wait has a deadline (socket timeouts, queue gets, wait_until).
"""
from __future__ import annotations

import base64
import logging
import queue
import socket
import threading
import time

import msgpack
import pytest

from bridge.py4j_server import Py4JFront, unescape
from sidecar.loop import Loop
from sidecar.testing import wait_until

TOKEN = "front-test-token"
DEADLINE = 10.0


class Peer:
    """One py4j connection, as a JVM thread's ClientServerConnection uses it."""

    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.buf = b""
        if token is not None:
            assert self.send(f"A\n{token}\ne\n".encode()) == b"!yv"

    def readline(self) -> bytes:
        buf = bytearray(self.buf)
        scanned = 0
        while (nl := buf.find(b"\n", scanned)) < 0:
            scanned = len(buf)
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the front closed the connection")
            buf += data
        line, self.buf = bytes(buf[:nl]), bytes(buf[nl + 1:])
        return line

    def send(self, command: bytes) -> bytes:
        self.sock.sendall(command)
        return self.readline()

    def apply(self, payload: bytes, method: str = "request") -> bytes:
        answer = self.send(b"c\nt\napply\ns" + method.encode() + b"\nj"
                           + base64.b64encode(payload) + b"\ne\n")
        assert answer.startswith(b"!yj"), answer[:200]
        return base64.b64decode(answer[3:])

    def closed_by_front(self) -> bool:
        """True once the front has closed (or reset) this connection; fails at the deadline."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


class Front:
    """A Py4JFront in a Loop on its own thread, with a handler the test drives."""

    def __init__(self, handler=None, max_message_bytes: int = 1 << 20, **limits) -> None:
        self.loop = Loop()
        self.held: queue.Queue = queue.Queue()
        self.front = Py4JFront(self.loop, handler or self.hold, python_port=0,
                               auth_token=TOKEN, max_message_bytes=max_message_bytes, **limits)
        self.front.start()
        self.port = self.front.port
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def hold(self, payload: bytes, reply) -> None:  # in the loop thread
        self.held.put((payload, reply))

    def release(self, reply, data: bytes) -> None:
        self.loop.call_soon_threadsafe(lambda: reply(data))

    def on_loop(self, fn):
        """Run ``fn`` in the loop thread and return its result (with a deadline)."""
        box: queue.Queue = queue.Queue()
        self.loop.call_soon_threadsafe(lambda: box.put(fn()))
        return box.get(timeout=DEADLINE)

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()
        self.front.stop()
        self.loop.close()


def echo(payload: bytes, reply) -> None:
    reply(payload)


@pytest.fixture
def front():
    f = Front()
    yield f
    f.stop()


@pytest.fixture
def echo_front():
    f = Front(echo)
    yield f
    f.stop()


# ---------------------------------------------------------------- the protocol, as py4j speaks it
def test_apply_round_trip_and_object_methods(echo_front):
    peer = Peer(echo_front.port)
    assert peer.apply(b"hello\x00\xff" * 100) == b"hello\x00\xff" * 100
    assert peer.apply(b"") == b""
    assert peer.send(b"c\nt\ntoString\ne\n") == b"!yspy3sidecar Py4J entry point"
    assert peer.send(b"c\nt\nhashCode\ne\n").startswith(b"!yi")
    assert peer.send(b"c\nt\nequals\nro12\ne\n") == b"!ybfalse"
    # Other methods, wrong arity, unknown objects: py4j's error return, the JVM raises.
    assert peer.send(b"c\nt\nsize\ne\n").startswith(b"!xsAttributeError")
    assert peer.send(b"c\nt\napply\nsrequest\ne\n").startswith(b"!xsTypeError")
    assert peer.send(b"c\np7\napply\nsrequest\njAA==\ne\n") == b"!xsObject ID unknown"
    # Garbage collection of a proxy, and an unknown command: answered, the connection lives.
    assert peer.send(b"g\nt\ne\n") == b"!y"
    assert peer.send(b"q\nt\n") == b"!xn"
    assert peer.apply(b"still here") == b"still here"
    peer.close()


def test_wrong_method_or_payload_type_is_a_bad_request_envelope(echo_front):
    peer = Peer(echo_front.port)
    reply = msgpack.unpackb(peer.apply(b"x", method="execute"))
    assert reply["error"]["kind"] == "bad_request" and "request" in reply["error"]["message"]
    answer = peer.send(b"c\nt\napply\nsrequest\ni42\ne\n")
    reply = msgpack.unpackb(base64.b64decode(answer[3:]))
    assert reply["error"]["kind"] == "bad_request" and "byte[]" in reply["error"]["message"]
    peer.close()


def test_a_command_split_into_single_bytes_and_two_commands_in_one_write(echo_front):
    peer = Peer(echo_front.port)
    command = b"c\nt\napply\nsrequest\nj" + base64.b64encode(b"slow") + b"\ne\n"
    for i in range(len(command)):
        peer.sock.sendall(command[i:i + 1])
    assert base64.b64decode(peer.readline()[3:]) == b"slow"
    peer.sock.sendall(b"c\nt\ntoString\ne\n" + command)
    assert peer.readline().startswith(b"!ys")
    assert base64.b64decode(peer.readline()[3:]) == b"slow"
    peer.close()


def test_escaped_strings_decode_like_py4j():
    from py4j.protocol import unescape_new_line

    for text in ["", "a\\nb", "a\\\\nb", "x\\ry\\\\", "\\\\\\n", "plain"]:
        assert unescape(text) == unescape_new_line(text)


# ---------------------------------------------------------------- authentication
def test_wrong_token_gets_py4j_failure_then_a_reset(echo_front, caplog):
    peer = Peer(echo_front.port, token=None)
    # What the JVM's NetworkUtil.authToServer reads: not "!yv" -> "Authentication with
    # callback server unsuccessful." (the Jython library's Unauthorized).
    assert peer.send(b"A\nnot-the-token\ne\n") == b"!xn"
    assert peer.closed_by_front()
    assert "wrong auth token" in caplog.text
    ok = Peer(echo_front.port)
    assert ok.apply(b"ok") == b"ok"
    ok.close()


def test_a_call_before_authenticating_is_refused_without_an_answer(echo_front):
    peer = Peer(echo_front.port, token=None)
    peer.sock.sendall(b"c\nt\napply\nsrequest\njAA==\ne\n")
    assert peer.closed_by_front()
    assert peer.buf == b"", "nothing may be answered before the handshake"


def test_token_with_the_right_prefix_or_extension_is_refused(echo_front):
    for token in (TOKEN[:-1], TOKEN + "x", ""):
        peer = Peer(echo_front.port, token=None)
        assert peer.send(f"A\n{token}\ne\n".encode()) == b"!xn"
        assert peer.closed_by_front()


# ---------------------------------------------------------------- hostile peers
@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\xff\xfe\n\n\n\x80garbage\n",
    b"\n\n\n",
])
def test_garbage_on_the_port_is_reset_and_the_front_keeps_serving(echo_front, garbage):
    peer = Peer(echo_front.port, token=None)
    peer.sock.sendall(garbage)
    assert peer.closed_by_front()
    ok = Peer(echo_front.port)
    assert ok.apply(b"fine") == b"fine"
    ok.close()


def test_endless_line_before_authenticating_is_cut_off_early(echo_front, caplog):
    peer = Peer(echo_front.port, token=None)
    try:
        peer.sock.sendall(b"x" * (1 << 20))  # no newline, ever
    except (ConnectionResetError, BrokenPipeError):
        pass  # the front may reset while we are still writing
    assert peer.closed_by_front()
    assert "before authenticating" in caplog.text


def test_oversized_command_is_answered_bad_request_and_the_connection_stays(caplog):
    f = Front(echo, max_message_bytes=1000)
    try:
        limit = f.front.max_command_bytes
        peer = Peer(f.port)
        assert peer.apply(b"y" * 1000) == b"y" * 1000  # the limit itself passes
        answer = peer.send(b"c\nt\napply\nsrequest\nj" + b"QUFB" * (limit // 4 + 1024)
                           + b"\ne\n")
        assert answer.startswith(b"!yj"), answer[:200]
        error = msgpack.unpackb(base64.b64decode(answer[3:]))["error"]
        assert error["kind"] == "bad_request" and "max-message-size" in error["message"]
        assert peer.apply(b"after") == b"after"  # the same connection serves on
        # many lines that are each small but together too large still close the connection
        try:
            peer.sock.sendall(b"c\nt\napply\nsrequest\n" + b"jQUFB\n" * (limit // 6 + 1024))
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert peer.closed_by_front()
        assert f"command over {limit} bytes" in caplog.text
        assert wait_until(lambda: not f.on_loop(lambda: len(f.front.connections)), DEADLINE)
        ok = Peer(f.port)
        assert ok.apply(b"after") == b"after"
        ok.close()
    finally:
        f.stop()


# ---------------------------------------------------------------- replies out of order, lost peers
def test_peer_vanishing_mid_call_drops_its_reply_only(front, caplog):
    caplog.set_level(logging.INFO, logger="py3sidecar.py4j")
    gone, stays = Peer(front.port), Peer(front.port)
    gone.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(b"one") + b"\ne\n")
    payload, reply_gone = front.held.get(timeout=DEADLINE)
    assert payload == b"one"
    gone.close()  # the JVM thread's read timed out, or the JVM died
    wait_until(lambda: "request in flight" in caplog.text, DEADLINE, message="close noticed")
    stays.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(b"two") + b"\ne\n")
    payload, reply_stays = front.held.get(timeout=DEADLINE)
    front.release(reply_gone, b"late")  # the pool answers exactly once: dropped, no error
    front.release(reply_stays, b"two!")
    assert base64.b64decode(stays.readline()[3:]) == b"two!"
    assert front.on_loop(lambda: front.front.dropped_replies) == 1
    assert front.on_loop(lambda: len(front.front.connections)) == 1
    stays.close()


def test_a_second_reply_is_ignored(front):
    peer = Peer(front.port)
    peer.sock.sendall(b"c\nt\napply\nsrequest\njAA==\ne\n")
    _, reply = front.held.get(timeout=DEADLINE)
    front.release(reply, b"first")
    front.release(reply, b"second")
    assert base64.b64decode(peer.readline()[3:]) == b"first"
    assert peer.send(b"c\nt\ntoString\ne\n").startswith(b"!ys"), "a stray line was written"
    peer.close()


def test_many_connections_with_replies_in_reverse_order(front):
    n = 64
    peers = [Peer(front.port) for _ in range(n)]
    for i, peer in enumerate(peers):
        peer.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(b"%d" % i) + b"\ne\n")
    held = [front.held.get(timeout=DEADLINE) for _ in range(n)]
    assert sorted(int(p) for p, _ in held) == list(range(n))
    for payload, reply in reversed(held):
        front.release(reply, b"re:" + payload)
    for i, peer in enumerate(peers):
        assert base64.b64decode(peer.readline()[3:]) == b"re:%d" % i
    # and a second round on the same connections, concurrently from threads
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            for k in range(20):
                peer = peers[i]
                peer.sock.sendall(b"c\nt\napply\nsrequest\nj"
                                  + base64.b64encode(b"%d.%d" % (i, k)) + b"\ne\n")
                assert base64.b64decode(peer.readline()[3:]) == b"%d.%d!" % (i, k)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    def answer() -> None:
        for _ in range(n * 20):
            payload, reply = front.held.get(timeout=DEADLINE)
            front.release(reply, payload + b"!")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    answerer = threading.Thread(target=answer)
    for t in [answerer, *threads]:
        t.start()
    for t in [answerer, *threads]:
        t.join(DEADLINE * 3)
        assert not t.is_alive()
    assert not errors, errors[:3]
    for peer in peers:
        peer.close()


def test_a_reader_that_stalls_does_not_block_the_loop():
    big = b"z" * (16 << 20)
    f = Front(lambda payload, reply: reply(big if payload == b"big" else payload),
              max_message_bytes=32 << 20)
    try:
        slow, fast = Peer(f.port), Peer(f.port)
        slow.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(b"big") + b"\ne\n")
        # 16 MiB (22 as base64) is more than the socket buffers hold while `slow` does not read:
        # the rest waits in the front, and the loop goes on serving others.
        wait_until(lambda: f.on_loop(lambda: any(c.out for c in f.front.connections)),
                   DEADLINE, message="a buffered partial write")
        assert fast.apply(b"quick") == b"quick"
        assert base64.b64decode(slow.readline()[3:]) == big
        assert slow.apply(b"next") == b"next"
        slow.close()
        fast.close()
    finally:
        f.stop()


def test_stop_is_bounded_with_calls_in_flight(front):
    peers = [Peer(front.port) for _ in range(8)]
    for peer in peers:
        peer.sock.sendall(b"c\nt\napply\nsrequest\njAA==\ne\n")
    held = [front.held.get(timeout=DEADLINE) for _ in range(8)]
    started = time.monotonic()
    front.on_loop(front.front.stop)
    assert time.monotonic() - started < 1.0
    for peer in peers:
        assert peer.closed_by_front()
    for _, reply in held:
        front.release(reply, b"too late")
    assert front.on_loop(lambda: front.front.dropped_replies) == 8
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", front.port), timeout=DEADLINE).recv(1)


# ---------------------------------------------------------------- against a real sidecar
def envelope(token: str, **fields) -> bytes:
    return msgpack.packb({"v": 1, "id": 1, "token": token, **fields})


def test_real_sidecar_serves_raw_py4j_calls_from_many_connections(sidecar):
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            peer = Peer(sidecar.py4j_port, token=sidecar.token)
            for k in range(10):
                reply = msgpack.unpackb(peer.apply(envelope(
                    sidecar.token, id=k, op="call", target="operator:add", args=[i, k])))
                assert reply["ok"] and reply["value"] == i + k and reply["id"] == k, reply
            peer.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert not errors, errors[:3]


def test_real_sidecar_refuses_a_wrong_py4j_token(sidecar):
    peer = Peer(sidecar.py4j_port, token=None)
    assert peer.send(b"A\nwrong\ne\n") == b"!xn"
    assert peer.closed_by_front()


def test_real_sidecar_survives_a_peer_vanishing_mid_call(sidecar, client):
    peer = Peer(sidecar.py4j_port, token=sidecar.token)
    peer.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(envelope(
        sidecar.token, op="execute", code="import time; time.sleep(1.5); 1")) + b"\ne\n")
    # Wait until the call is really in the pool, then vanish.
    wait_until(lambda: client.health()["pool"]["workers_by_state"]["busy"] >= 1, DEADLINE,
               message="the call to reach a worker")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()
    wait_until(lambda: "reply dropped" in sidecar.log(), DEADLINE, message="the dropped reply")
    assert client.call("operator:add", 2, 3) == 5
    other = Peer(sidecar.py4j_port, token=sidecar.token)
    reply = msgpack.unpackb(other.apply(envelope(sidecar.token, op="ping")))
    assert reply["ok"], reply
    other.close()


def test_a_peer_that_never_authenticates_is_reset_after_the_deadline(echo_front, monkeypatch):
    import bridge.py4j_server as server

    monkeypatch.setattr(server, "AUTH_DEADLINE", 0.2)
    silent = Peer(echo_front.port, token=None)  # connects, says nothing
    assert silent.closed_by_front()
    ok = Peer(echo_front.port)
    assert ok.apply(b"ok") == b"ok"
    ok.close()


# ---------------------------------------------------------------- connection cap, idle timeout
def test_connections_beyond_the_cap_are_reset_and_unauthenticated_ones_give_way(caplog):
    f = Front(echo, max_connections=3)
    peers = []
    try:
        peers = [Peer(f.port), Peer(f.port)]
        waiting = Peer(f.port, token=None)  # connected, not authenticated (yet)
        assert wait_until(lambda: f.on_loop(lambda: len(f.front.connections)) == 3, DEADLINE)
        newcomer = Peer(f.port)  # takes the place of the one that never authenticated
        peers.append(newcomer)
        assert waiting.closed_by_front()
        assert newcomer.apply(b"in") == b"in"
        with pytest.raises((ConnectionResetError, EOFError)):  # the reset may beat connect()
            with socket.create_connection(("127.0.0.1", f.port), timeout=DEADLINE) as refused:
                refused.sendall(b"A\n" + TOKEN.encode() + b"\ne\n")
                if not refused.recv(16):
                    raise EOFError
        assert "max-connections = 3" in caplog.text
        assert all(p.apply(b"still") == b"still" for p in peers)  # the held ones serve on
    finally:
        for p in peers:
            p.close()
        f.stop()


def test_idle_authenticated_connections_are_closed_after_the_idle_timeout(caplog):
    caplog.set_level(logging.INFO, "py3sidecar.py4j")
    f = Front(echo, idle_timeout=0.3)
    try:
        idle = Peer(f.port)
        assert idle.apply(b"once") == b"once"
        assert idle.closed_by_front()
        assert "idle-timeout" in caplog.text
        fresh = Peer(f.port)
        assert fresh.apply(b"again") == b"again"
        fresh.close()
    finally:
        f.stop()


def test_nothing_sent_before_authenticating_is_logged_but_its_size(echo_front, caplog):
    peer = Peer(echo_front.port, token=None)
    peer.sock.sendall(b"maybe-the-real-token-typed-in-the-wrong-place\n")
    assert peer.closed_by_front()
    assert wait_until(lambda: "did not authenticate first" in caplog.text, DEADLINE)
    assert "maybe-the-real-token" not in caplog.text
    assert "45-byte line" in caplog.text and "127.0.0.1:" in caplog.text
