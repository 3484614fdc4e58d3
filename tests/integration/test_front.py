"""Covers: bridge.zmq_server, bridge.protocol, bridge.token.

Hostile and broken clients against the running ZeroMQ front: each gets a clear error reply,
and the sidecar keeps serving."""

import os
import signal
import threading

import msgpack
import pytest
import zmq

from bridge.client import BadRequest, CallTimeout, Client, Unauthorized, Unavailable
from sidecar.testing import SidecarProcess, free_port


@pytest.fixture
def raw(sidecar):
    ctx = zmq.Context()
    sock = sidecar.authenticate(ctx.socket(zmq.DEALER))
    sock.linger = 0
    sock.connect(sidecar.endpoint)

    def exchange(*frames):
        sock.send_multipart(list(frames))
        assert sock.poll(5000), "no reply from the sidecar"
        return msgpack.unpackb(sock.recv(), raw=False)

    yield exchange
    sock.close()
    ctx.term()


def envelope(sidecar, **extra):
    return msgpack.packb({"v": 1, "id": 7, "op": "execute", "code": "1+1",
                          "token": sidecar.token, **extra})


@pytest.mark.parametrize("frames, kind, fragment", [
    ([b"\xc1\xc1\xc1"], "bad_request", "not a msgpack envelope"),
    ([b""], "bad_request", "not a msgpack envelope"),
    ([msgpack.packb([1, 2, 3])], "unauthorized", "no token"),
    ([b"one", b"two"], "bad_request", "exactly one frame"),
])
def test_malformed_frames_get_bad_request(sidecar, client, raw, frames, kind, fragment):
    reply = raw(*frames)
    assert reply["ok"] is False and reply["id"] is None
    assert reply["error"]["kind"] == kind and fragment in reply["error"]["message"]
    assert client.execute("1+1").value == 2


@pytest.mark.parametrize("extra, fragment", [
    ({"op": "explode"}, "unknown 'op'"),
    ({"code": 5}, "'code' must be a string"),
    ({"timeout": -1}, "'timeout' must be"),
    ({"timeout": "soon"}, "'timeout' must be"),
    ({"vars": [1]}, "'vars' must be a map"),
    ({"op": "call", "target": "nocolon"}, "'target' must look like"),
    ({"op": "call", "target": "m:f", "args": "abc"}, "'args' must be a list"),
    ({"v": 99}, "unsupported protocol version"),
])
def test_invalid_envelopes_name_the_bad_member(sidecar, client, raw, extra, fragment):
    reply = raw(envelope(sidecar, **extra))
    assert reply["id"] == 7 and reply["error"]["kind"] == "bad_request"
    assert fragment in reply["error"]["message"]
    assert client.execute("1+1").value == 2


def test_wrong_and_missing_tokens_are_unauthorized(sidecar, client, raw):
    reply = raw(envelope(sidecar, token="not-the-token"))
    assert reply["error"]["kind"] == "unauthorized" and "wrong token" in reply["error"]["message"]
    reply = raw(envelope(sidecar, token=None))
    assert reply["error"]["kind"] == "unauthorized"
    with pytest.raises(Unauthorized):
        Client(sidecar.endpoint, "wrong", timeout=5).execute("1+1")
    assert client.execute("1+1").value == 2


def test_refusals_to_unauthenticated_peers_name_no_path(sidecar, client, raw):
    # A peer without the token learns nothing of the host's layout; the operator's log does.
    token_file = sidecar.runtime_dir / "token"
    assert token_file.exists()
    replies = [raw(envelope(sidecar, token="not-the-token")), raw(envelope(sidecar, token=None)),
               raw(msgpack.packb({"v": 1, "id": 8, "op": "ping"}))]
    for reply in replies:
        message = reply["error"]["message"]
        assert reply["error"]["kind"] == "unauthorized", reply
        assert "/" not in message and str(sidecar.runtime_dir) not in message, message
        assert "python3.bridge.token-file" in message, message
    with pytest.raises(Unauthorized) as info:
        Client(sidecar.endpoint, "wrong", timeout=5).execute("1+1")
    assert str(token_file) not in str(info.value)
    assert f"token file {token_file}" in sidecar.log()
    assert client.execute("1+1").value == 2


def test_req_sockets_are_answered_too(sidecar):
    ctx = zmq.Context()
    sock = sidecar.authenticate(ctx.socket(zmq.REQ))
    sock.linger = 0
    sock.connect(sidecar.endpoint)
    sock.send(envelope(sidecar))
    assert sock.poll(5000)
    assert msgpack.unpackb(sock.recv())["value"] == 2
    sock.close()
    ctx.term()


def test_oversized_messages_are_refused_before_decoding(tmp_path):
    with SidecarProcess({"bridge": {"max-message-size": "64KiB"}, "pool": {"initial-size": 1}},
                        workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=5)
        with pytest.raises(BadRequest, match="above the limit of 65536"):
            client.execute("len(x)", {"x": "a" * 100_000})
        # a result above the limit is refused by the worker, which lives on
        with pytest.raises(Exception, match="above the limit"):
            client.execute("'b' * 100_000")
        # far beyond the hard cap libzmq drops the peer; the client sees the drop and says why
        # (tests/integration/test_oversize.py checks that it does so long before its deadline)
        with pytest.raises(BadRequest, match="max-message-size"):
            Client(proc.endpoint, proc.token, timeout=5).execute(
                "len(x)", {"x": "c" * 1_000_000})
        assert client.execute("1+1").value == 2


def test_client_fails_fast_when_nothing_listens():
    client = Client(f"tcp://127.0.0.1:{free_port()}", "t", timeout=5, connect_timeout=0.3)
    with pytest.raises(Unavailable, match="cannot reach the sidecar"):
        client.execute("1+1")
    client.close()


def test_concurrent_clients_from_many_threads(sidecar):
    from concurrent.futures import ThreadPoolExecutor

    client = sidecar.client(timeout=10)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: client.call("operator:add", i, 1), range(400)))
    assert results == [i + 1 for i in range(400)]


def test_big_request_to_a_worker_that_cannot_read_never_blocks_the_sidecar(tmp_path):
    # The only worker is stuck (frozen from outside: a thread left by a call to hold the GIL
    # would get the worker recycled first), so it cannot read a 2 MB request from its pipe
    # (64 KiB buffer). The sidecar must keep answering everyone else.
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "health": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=20)
        os.kill(client.execute("import os; os.getpid()").value, signal.SIGSTOP)
        outcome = {}

        def big():
            try:
                client.execute("len(x)", {"x": "y" * 2_000_000}, timeout=2)
            except Exception as exc:  # asserted below
                outcome["error"] = exc

        t = threading.Thread(target=big)
        t.start()
        other = proc.client(timeout=5)
        assert other.ping()["state"] == "running"  # answered while the write is pending
        t.join(15)
        assert isinstance(outcome.get("error"), CallTimeout)
        assert other.execute("1+1").value == 2
