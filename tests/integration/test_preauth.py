"""Covers: bridge.preauth, bridge.zmq_server, bridge.py4j_server.

Before authentication the sidecar does bounded work: a hostile frame
without a token neither grows the sidecar's memory nor stalls its loop, and replies to
unauthenticated requests never echo a long id. Figures are same-run ratios, never absolute times.
"""

import statistics
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from sidecar.testing import SidecarProcess

FRAME = 16 << 20  # 16 MiB, well under the default 64 MiB limit: the frame is admitted
DEADLINE_MS = 30_000


def hostile_frame() -> bytes:
    """An envelope whose `vars` is an array of 16M empty maps: 16M dicts if decoded."""
    n = FRAME
    return (b"\x82\xa2op\xa7execute\xa4vars" + b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n)


def benign_frame() -> bytes:
    """The same size, one bytes member: cheap for any decoder."""
    return msgpack.packb({"op": "execute", "pad": b"\x80" * FRAME})


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def proc(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "health": {"enabled": False}}, workdir=str(tmp_path)) as p:
        yield p


def dealer(ctx: zmq.Context, proc: SidecarProcess) -> zmq.Socket:
    sock = proc.authenticate(ctx.socket(zmq.DEALER))
    sock.linger = 0
    sock.connect(proc.endpoint)
    return sock


def exchange(sock: zmq.Socket, data: bytes) -> dict:
    sock.send(data)
    assert sock.poll(DEADLINE_MS), "no reply from the sidecar"
    return msgpack.unpackb(sock.recv(), raw=False)


def measure(proc: SidecarProcess, ctx: zmq.Context, frame: bytes, rounds: int = 3):
    """Round trips of ``frame`` (unauthenticated) and the worst latency of pings sent
    concurrently from another connection, in the same run."""
    sender = dealer(ctx, proc)
    pinger = dealer(ctx, proc)
    ping = msgpack.packb({"v": 1, "id": 1, "token": proc.token, "op": "ping"})
    exchange(pinger, ping)
    worst: list[float] = []
    done = threading.Event()

    def keep_pinging():
        while not done.is_set():
            started = time.perf_counter()
            reply = exchange(pinger, ping)
            worst.append(time.perf_counter() - started)
            assert reply["ok"], reply

    thread = threading.Thread(target=keep_pinging, daemon=True)
    thread.start()
    trips = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            reply = exchange(sender, frame)
            trips.append(time.perf_counter() - started)
            assert reply["error"]["kind"] == "unauthorized", reply
    finally:
        done.set()
        thread.join(DEADLINE_MS / 1000)
        sender.close()
        pinger.close()
    return statistics.median(trips), max(worst)


def test_hostile_frame_before_auth_is_bounded_in_memory_and_loop_time(proc):
    pid = proc.proc.pid
    ctx = zmq.Context()
    try:
        benign_trip, benign_ping = measure(proc, ctx, benign_frame())
        before = peak_rss(pid)
        hostile_trip, hostile_ping = measure(proc, ctx, hostile_frame())
        grown = peak_rss(pid) - before
    finally:
        ctx.term()
    print(f"\nunauthenticated 16 MiB frame: benign {benign_trip * 1000:.1f} ms, hostile "
          f"{hostile_trip * 1000:.1f} ms round trip; worst concurrent ping {benign_ping * 1000:.1f}"
          f" vs {hostile_ping * 1000:.1f} ms; peak RSS grew {grown >> 20} MiB")
    # c66ceb3 decodes 16M dicts: about 1 GiB more and a loop stalled for a second or two.
    assert grown < 4 * FRAME, f"peak RSS grew by {grown >> 20} MiB for one 16 MiB frame"
    assert hostile_trip < 4 * benign_trip + 0.05, (hostile_trip, benign_trip)
    assert hostile_ping < 4 * benign_ping + 0.05, (hostile_ping, benign_ping)
    assert proc.client(timeout=5).execute("1+1").value == 2


def test_unauthenticated_replies_echo_only_a_short_id(proc):
    ctx = zmq.Context()
    sock = dealer(ctx, proc)
    try:
        reply = exchange(sock, msgpack.packb({"v": 1, "id": "i" * (4 << 20), "op": "ping",
                                              "token": "wrong"}))
        assert reply["error"]["kind"] == "unauthorized" and reply["id"] is None
        reply = exchange(sock, msgpack.packb({"v": 1, "id": "short", "op": "ping",
                                              "token": "wrong"}))
        assert reply["error"]["kind"] == "unauthorized" and reply["id"] == "short"
        reply = exchange(sock, msgpack.packb({"op": "execute", "vars": [0] * 100_000,
                                              "id": 3, "token": proc.token}))
        assert reply["error"]["kind"] == "unauthorized"
        assert "before large members" in reply["error"]["message"]
        # the right token's bytes inside another value are not the envelope's token
        decoy = msgpack.packb({"token": proc.token})[1:]
        reply = exchange(sock, msgpack.packb({"v": 1, "id": 4, "pad": decoy, "op": "ping",
                                              "token": "wrong"}))
        assert reply["error"]["kind"] == "unauthorized", reply
    finally:
        sock.close()
        ctx.term()


def test_large_arguments_from_the_client_still_pass(proc):
    # The client sends the token first, so a large argument never hides it.
    client = proc.client(timeout=20)
    assert client.call("builtins:len", list(range(200_000))) == 200_000
    assert client.execute("len(v)", {"v": [{}] * 50_000}).value == 50_000
