"""Covers: bridge.zmq_auth, bridge.zmq_server.

Authentication at the ZeroMQ handshake (bridge/zmq_auth.py): PLAIN with the token by default,
CURVE with python3.bridge.zmq.curve; a peer that fails or skips it gets nothing and costs the
sidecar no memory. Real sidecars, real sockets."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from bridge import codec, protocol
from bridge.client import Client
from bridge.protocol import Unauthorized, Unavailable
from sidecar.testing import SidecarProcess, wait_until

POOL = {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0}


def curve(**extra):
    return {"pool": POOL, "bridge": {"zmq": {"curve": {"enabled": True, **extra}}}}


@pytest.fixture(scope="module")
def plain_sidecar(tmp_path_factory):
    with SidecarProcess({"pool": POOL}, workdir=str(tmp_path_factory.mktemp("plain"))) as proc:
        yield proc


def envelope(token: str, op: str = "ping", **fields) -> bytes:
    return codec.packb({"v": protocol.VERSION, "id": 1, "token": token, "op": op, **fields})


def handshake_events(sock: zmq.Socket, want: int, timeout: float = 5.0) -> list[int]:
    """Monitor events of ``sock`` until one in ``want`` arrives (or the deadline)."""
    monitor = sock.get_monitor_socket()
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if monitor.poll(50):
                event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
                seen.append(event)
                if event & want:
                    break
    finally:
        sock.disable_monitor()
        monitor.close(0)
    return seen


def raw_dealer(endpoint: str, **options) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    return sock


def try_send(sock: zmq.Socket, data: bytes) -> None:
    """Queue ``data`` if the socket takes it (a refused peer may have no pipe to queue on)."""
    try:
        sock.send(data, zmq.NOBLOCK)
    except zmq.Again:
        pass


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def test_plain_right_token_is_served_wrong_one_refused_at_the_handshake(plain_sidecar):
    assert plain_sidecar.connection["zmq"]["mechanism"] == "plain"
    assert plain_sidecar.client().call("operator:add", 1, 2) == 3
    accepted = plain_sidecar.pool()["counters"]["accepted"]

    sock = raw_dealer(plain_sidecar.endpoint, plain_username=b"py3sidecar",
                      plain_password=b"not-the-token")
    sock.connect(plain_sidecar.endpoint)
    events = handshake_events(sock, zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    assert zmq.EVENT_HANDSHAKE_FAILED_AUTH in events, events
    assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events
    # Even with the right token in the envelope: nothing passes a refused handshake.
    try_send(sock, envelope(plain_sidecar.token, "call", target="operator:add", args=[1, 2]))
    assert not sock.poll(500), "a peer refused at the handshake got a reply"
    sock.close(0)
    assert plain_sidecar.pool()["counters"]["accepted"] == accepted

    started = time.monotonic()
    with pytest.raises(Unauthorized, match="handshake"):
        Client(plain_sidecar.endpoint, "wrong-token", timeout=5).call("operator:add", 1, 2)
    assert time.monotonic() - started < 1.0  # told at once, not after connect-timeout
    log = plain_sidecar.log()
    assert "refused a ZeroMQ peer" in log and "wrong token" in log
    assert "not-the-token" not in log and plain_sidecar.token not in log


def test_refusals_are_logged_once_per_peer(plain_sidecar):
    before = plain_sidecar.log().count("refused a ZeroMQ peer")
    for _ in range(5):
        with pytest.raises(Unauthorized):
            Client(plain_sidecar.endpoint, "wrong", timeout=2).ping()
    # libzmq retries a refused connection every 100 ms: many refusals, one line a minute
    assert plain_sidecar.log().count("refused a ZeroMQ peer") - before <= 1


def test_a_null_peer_gets_nothing_and_costs_no_memory(plain_sidecar):
    """The finding: token-less frames of a peer that skips the handshake's auth raised the
    sidecar's peak RSS by hundreds of MiB. Now its greeting is refused, its frames never read."""
    pid = plain_sidecar.proc.pid
    before = rss_kib(pid)
    null = raw_dealer(plain_sidecar.endpoint)
    null.connect(plain_sidecar.endpoint)
    try_send(null, envelope(plain_sidecar.token))  # a well-formed ping, with the right token
    assert not null.poll(500), "a NULL-mechanism peer of a PLAIN front got a reply"
    null.close(0)
    # Raw TCP, as an attacker would: a ZMTP 3.0 NULL greeting, then 4 frames of 20 MiB each.
    port = int(plain_sidecar.endpoint.rsplit(":", 1)[1])
    chunk = b"\0" * (1 << 20)
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0")
                        + b"\0" * 32)
            try:
                raw.sendall(b"\x02" + struct.pack(">Q", 20 << 20))
                for _ in range(20):
                    raw.sendall(chunk)
            except OSError:
                pass  # cut off after its greeting: what we expect
    assert plain_sidecar.client().call("operator:add", 2, 2) == 4
    grew = rss_kib(pid) - before
    assert grew < 8 << 10, f"peak RSS grew by {grew} KiB for token-less frames"


def test_curve_any_client_with_the_server_key(tmp_path):
    with SidecarProcess(curve(), workdir=str(tmp_path)) as proc:
        info = proc.connection["zmq"]
        key = info["curve"]["server-key"]
        assert info["mechanism"] == "curve" and len(key) == 40
        secret = proc.runtime_dir / "zmq-curve-server.key_secret"
        assert os.stat(secret).st_mode & 0o777 == 0o600
        assert key not in secret.read_text().split("secret-key")[1]  # the pair, not the key twice
        # The client finds the key in connection.json; a fresh client key pair is enough here.
        assert proc.client().call("operator:add", 1, 2) == 3
        pinged = Client(proc.endpoint, proc.token, curve_server_key=key).ping()
        assert pinged["pid"] == proc.proc.pid
        # PLAIN and NULL peers of a CURVE front get nothing.
        for options in ({"plain_username": b"py3sidecar", "plain_password": proc.token.encode()},
                        {}):
            sock = raw_dealer(proc.endpoint, **options)
            sock.connect(proc.endpoint)
            try_send(sock, envelope(proc.token))
            assert not sock.poll(500), f"a peer with {sorted(options)} got a reply"
            sock.close(0)
        # The token stays required inside: CURVE with a wrong token is `unauthorized`.
        with pytest.raises(Unauthorized, match="token"):
            Client(proc.endpoint, "wrong", curve_server_key=key).ping()
        # The key pair is made once and reused.
        proc.stop()
        proc.start()
        assert proc.connection["zmq"]["curve"]["server-key"] == key


def test_curve_client_keys_dir(tmp_path):
    keys = tmp_path / "clients"
    keys.mkdir()
    _, listed = zmq.auth.create_certificates(str(keys), "listed")
    other = tmp_path / "other"
    other.mkdir()
    _, unlisted = zmq.auth.create_certificates(str(other), "unlisted")
    config = curve(**{"client-keys-dir": str(keys)})
    os.environ["PY3SIDECAR_CLIENT_KEY_FILE"] = listed  # the harness's own probe client
    try:
        with SidecarProcess(config, workdir=str(tmp_path / "sc")) as proc:
            assert proc.client(client_key_file=listed).call("operator:add", 1, 2) == 3
            with pytest.raises(Unauthorized, match="client-keys-dir"):
                proc.client(client_key_file=unlisted, timeout=3).ping()
            os.environ.pop("PY3SIDECAR_CLIENT_KEY_FILE")
            with pytest.raises(Unauthorized):  # a fresh pair is not listed either
                proc.client(timeout=3).ping()
            assert "CURVE key not in python3.bridge.zmq.curve.client-keys-dir" in proc.log()
    finally:
        os.environ.pop("PY3SIDECAR_CLIENT_KEY_FILE", None)


def test_cli_exec_against_plain_and_curve(plain_sidecar, tmp_path):
    def cli(proc, *args):
        return subprocess.run([sys.executable, "-m", "sidecar", "exec", *args, "--endpoint",
                               proc.endpoint], capture_output=True, text=True, env=proc.env,
                              timeout=30)

    result = cli(plain_sidecar, "6*7")
    assert (result.returncode, result.stdout.strip()) == (0, "42"), result.stderr
    with SidecarProcess(curve(), workdir=str(tmp_path)) as proc:
        result = cli(proc, "6*7")  # the server key comes from its connection.json
        assert (result.returncode, result.stdout.strip()) == (0, "42"), result.stderr


def test_remote_failover_over_curve(tmp_path):
    """Sidecar A's pool cannot start; its calls go to sidecar B over CURVE, with A's client
    key listed in B's client-keys-dir. A wrong server key is named, not mistaken for a down B."""
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\nexit 7\n")
    broken.chmod(0o755)
    keys = tmp_path / "clients"
    keys.mkdir()
    _, a_key = zmq.auth.create_certificates(str(keys), "sidecar-a")
    os.environ["PY3SIDECAR_CLIENT_KEY_FILE"] = a_key  # the harness's probe of B
    try:
        remote = SidecarProcess(curve(**{"client-keys-dir": str(keys)}),
                                workdir=str(tmp_path / "b")).start()
    finally:
        os.environ.pop("PY3SIDECAR_CLIENT_KEY_FILE")
    try:
        server_key = remote.connection["zmq"]["curve"]["server-key"]
        section = {"endpoint": remote.endpoint, "token": remote.token,
                   "curve-server-key": server_key, "client-key-file": a_key}
        with SidecarProcess({"worker": {"python": str(broken)}, "pool": POOL,
                             "fallback": {"strategies": ["primary", "remote"],
                                          "remote": section}},
                            workdir=str(tmp_path / "a"), ready_workers=0) as local:
            client = local.client(timeout=5)
            result = wait_until(lambda: _via_remote(client), 10, message="a remote reply")
            assert result.via == "remote" and result.value == 3
        wrong_key = zmq.curve_keypair()[0].decode()
        with SidecarProcess({"worker": {"python": str(broken)}, "pool": POOL,
                             "fallback": {"strategies": ["primary", "remote"],
                                          "remote": {**section, "curve-server-key": wrong_key}}},
                            workdir=str(tmp_path / "a2"), ready_workers=0) as local:
            client = local.client(timeout=3)
            with pytest.raises(Unavailable, match="remote"):
                client.execute("1+2", timeout=1)
    finally:
        remote.stop()


def _via_remote(client):
    try:
        return client.execute("1+2", timeout=2)
    except Unavailable:
        return None
