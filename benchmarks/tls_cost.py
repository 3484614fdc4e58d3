"""What TLS costs a trivial Py4J call (python3.bridge.py4j.tls), plain vs TLS in the same run.

Two real sidecars (one Py4J front plain, one TLS with a throwaway CA's certificate); a CPython
client speaking py4j's wire protocol (what the JVM's ClientServer sends) on one connection to
each. Rounds are interleaved so a change of load on the machine hits both. Reported: the
median round trip of ``call operator:add(1, 2)`` (through a worker) and of ``ping`` (the
sidecar alone), the sidecar's CPU per call, and the cost of opening a connection (connect,
handshake, py4j auth). The Jython figures come from tests/jython/test_tls_jython.py (``-s``).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/tls_cost.py [CALLS_PER_ROUND]
"""

from __future__ import annotations

import base64
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.testing import SidecarProcess  # noqa: E402
from sidecar.testing_tls import make_test_certificates  # noqa: E402

CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "scaling": {"enabled": False}, "health": {"enabled": False}}
ROUNDS = 5


class Py4JPeer:
    """One py4j connection, as a JVM thread's ClientServerConnection uses it."""

    def __init__(self, port: int, token: str, ca: Path | None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ca is not None:
            sock = ssl.create_default_context(cafile=str(ca)).wrap_socket(
                sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.file = sock.makefile("rb")
        self.token = token
        sock.sendall(f"A\n{token}\ne\n".encode())
        assert self.file.readline() == b"!yv\n"

    def apply(self, request: dict) -> dict:
        payload = msgpack.packb({"v": 1, "id": 1, "token": self.token, **request})
        self.sock.sendall(b"c\nt\napply\nsrequest\nj" + base64.b64encode(payload) + b"\ne\n")
        line = self.file.readline()
        return msgpack.unpackb(base64.b64decode(line[3:-1]))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def median_us(peer: Py4JPeer, request: dict, n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        reply = peer.apply(request)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        assert reply["ok"], reply
    return statistics.median(samples)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def connect_ms(port: int, token: str, ca: Path | None, n: int = 50) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        Py4JPeer(port, token, ca).close()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(samples)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    work = Path(tempfile.mkdtemp(prefix="py3sidecar-tls-cost-"))
    certs = make_test_certificates(work / "certs")
    tls_config = {**CONFIG, "bridge": {"py4j": {"tls": {
        "enabled": True, "cert-file": str(certs.cert), "key-file": str(certs.key)}}}}
    with SidecarProcess(CONFIG, workdir=str(work / "plain")) as plain, \
            SidecarProcess(tls_config, workdir=str(work / "tls")) as tls:
        sides = {"plain": (plain, None), "tls": (tls, certs.ca)}
        peers = {name: Py4JPeer(sc.py4j_port, sc.token, ca) for name, (sc, ca) in sides.items()}
        procs = {name: psutil.Process(sc.proc.pid) for name, (sc, _) in sides.items()}
        add = {"op": "call", "target": "operator:add", "args": [1, 2]}
        figures: dict[str, dict[str, list[float]]] = {
            name: {"call": [], "ping": [], "cpu_us": []} for name in sides}
        for peer in peers.values():  # warm-up
            median_us(peer, add, 300)
        for _ in range(ROUNDS):
            for name, peer in peers.items():
                before = cpu_seconds(procs[name])
                figures[name]["call"].append(median_us(peer, add, n))
                figures[name]["cpu_us"].append((cpu_seconds(procs[name]) - before) / n * 1e6)
                figures[name]["ping"].append(median_us(peer, {"op": "ping"}, n))
        opening = {name: connect_ms(sc.py4j_port, sc.token, ca) for name, (sc, ca) in
                   sides.items()}
        for peer in peers.values():
            peer.close()
    best = {name: {k: min(v) for k, v in f.items()} for name, f in figures.items()}
    print(f"{n} calls x {ROUNDS} interleaved rounds; best round's median (us)")
    for what in ("call", "ping", "cpu_us"):
        p, t = best["plain"][what], best["tls"][what]
        label = {"call": "call operator:add (us)", "ping": "ping (us)",
                 "cpu_us": "sidecar CPU per call (us)"}[what]
        print(f"  {label:28} plain {p:8.1f}  tls {t:8.1f}  tls/plain {t / p:5.2f}  "
              f"(+{t - p:.1f})")
    p, t = opening["plain"], opening["tls"]
    print(f"  {'open a connection (ms)':28} plain {p:8.2f}  tls {t:8.2f}  tls/plain {t / p:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
