"""What authentication and encryption at the ZeroMQ handshake cost a trivial call (issue 19).

Three sidecars in the same run: NULL (the code before handshake authentication: the main
checkout, or any tree given with --null-tree), PLAIN (the default now) and CURVE
(python3.bridge.zmq.curve.enabled). The same client loop drives each: one pyzmq DEALER,
``call("operator:add", 1, 2)`` envelopes, one at a time; rounds alternate between the three
so the machine's load falls on all alike. Reported per mechanism: the median wall time per call
and the sidecar's CPU per call (utime+stime of its process from /proc, over the whole run).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/zmq_security_cost.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from bridge import codec, protocol
from bridge.zmq_auth import client_security
from sidecar.testing import SidecarProcess

POOL = {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0}
QUIET = {"pool": POOL, "scaling": {"enabled": False}, "health": {"enabled": False},
         "http": {"enabled": False}, "bridge": {"py4j": {"enabled": False}}}


class TreeSidecar(SidecarProcess):
    """A sidecar run from another source tree (the NULL baseline)."""

    def __init__(self, tree: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tree = tree

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = self.tree
        return env

    def client(self, timeout: float = 10.0, **kwargs):  # its own (NULL) client, for start()
        sys.path.insert(0, self.tree)
        try:
            return _NullProbe(self.endpoint, self.token)
        finally:
            sys.path.pop(0)


class _NullProbe:
    """Just enough of a client for SidecarProcess.start() against a NULL front."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.dealer = dealer(endpoint, token, None)

    def health(self) -> dict:
        return exchange(self.dealer, {"op": "health"}, "")["value"]

    def close(self) -> None:
        self.dealer.close(0)


class Link:
    """One DEALER and the token its envelopes carry."""

    def __init__(self, sock: zmq.Socket, token: str) -> None:
        self.sock, self.token = sock, token

    def close(self, linger: int = 0) -> None:
        self.sock.close(linger)


def dealer(endpoint: str, token: str, mechanism: str | None,
           server_key: str | None = None) -> Link:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    if mechanism is not None:
        client_security(token, server_key).apply(sock)
    sock.connect(endpoint)
    return Link(sock, token)


def exchange(link: Link, request: dict, _: str, rid: int = 1) -> dict:
    link.sock.send(codec.packb({"v": protocol.VERSION, "id": rid, "token": link.token,
                                **request}))
    if not link.sock.poll(10000):
        raise TimeoutError("no reply within 10 s")
    return codec.unpackb(link.sock.recv())


def measure(link: Link, calls: int) -> list[float]:
    sock = link.sock
    payload = codec.packb({"v": protocol.VERSION, "id": 1, "token": link.token, "op": "call",
                           "target": "operator:add", "args": [1, 2]})
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        sock.send(payload)
        sock.recv()
        times.append(time.perf_counter() - started)
    return times


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--null-tree", default="/work/main",
                        help="source tree of the NULL baseline (the code before this change)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="zmq-security-cost-"))
    procs = {
        "NULL": TreeSidecar(args.null_tree, QUIET, workdir=str(work / "null")),
        "PLAIN": SidecarProcess(QUIET, workdir=str(work / "plain")),
        "CURVE": SidecarProcess({**QUIET, "bridge": {**QUIET["bridge"],
                                                     "zmq": {"curve": {"enabled": True}}}},
                                workdir=str(work / "curve")),
    }
    socks = {}
    try:
        for proc in procs.values():
            proc.start()
        for name, proc in procs.items():
            key = (proc.connection["zmq"].get("curve") or {}).get("server-key")
            socks[name] = dealer(proc.endpoint, proc.token,
                                 None if name == "NULL" else name.lower(), key)
            assert exchange(socks[name], {"op": "call", "target": "operator:add",
                                          "args": [1, 2]}, "")["value"] == 3
            measure(socks[name], 200)  # warm-up
        walls: dict[str, list[float]] = {name: [] for name in procs}
        cpu = dict.fromkeys(procs, 0.0)
        for _ in range(args.rounds):
            for name, proc in procs.items():
                before = cpu_seconds(proc.proc.pid)
                walls[name] += measure(socks[name], args.calls)
                cpu[name] += cpu_seconds(proc.proc.pid) - before
        total = args.calls * args.rounds
        print(f"{total} calls of operator:add(1, 2) per mechanism, {args.rounds} alternating "
              f"rounds, one DEALER, {os.cpu_count()} CPUs")
        print(f"{'mechanism':<10} {'median wall us':>15} {'p90 wall us':>12} "
              f"{'sidecar CPU us/call':>20}")
        base = statistics.median(walls["NULL"])
        for name in procs:
            median = statistics.median(walls[name])
            p90 = statistics.quantiles(walls[name], n=10)[-1]
            print(f"{name:<10} {median * 1e6:>15.1f} {p90 * 1e6:>12.1f} "
                  f"{cpu[name] / total * 1e6:>20.1f}   ({median / base:.2f}x NULL)")
    finally:
        for sock in socks.values():
            sock.close(0)
        for proc in procs.values():
            proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
