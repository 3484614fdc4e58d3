"""`make fuzz`: a million fuzzed frames at a real `py3sidecar serve`, through both fronts.

    python tests/fuzz/run_fuzz.py [FRAMES] [--corpus N] [--seed S]

hypothesis draws a corpus of envelopes and mutations (tests/fuzz/frames.py); the frames cycle
through it, each packed afresh with its own id (and sometimes a fresh mutation), pipelined over
one ZeroMQ DEALER (a window of requests in flight) while a second thread sends its share over
two authenticated Py4J connections, one request at a time; at the end, connections that never
authenticate to Py4J must be closed by the front. Printed: frames sent, replies, kinds seen,
worker crashes, the sidecar's RSS, fds and threads before/after. Exit status 1 when a request
got no reply or two, a reply was malformed or `internal`/`crashed`, a worker crashed, or the
sidecar's fds/threads grew or its RSS grew past the bound.
"""
from __future__ import annotations

import argparse
import random
import socket
import sys
import threading
import time
from pathlib import Path

import zmq
from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, run from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frames import MUTATIONS, Py4JPeer, Tally, envelopes, mutate, mutations, pack, resources  # noqa: E402

from sidecar.testing import SidecarProcess, wait_until  # noqa: E402

WINDOW = 64  # ZeroMQ requests in flight
PY4J_SHARE = 0.05
RSS_GROWTH_LIMIT = 64 << 20
DEADLINE = 30.0  # the longest any one reply may take


def build_corpus(size: int, seed: int) -> list[tuple[dict, tuple[str, int, int]]]:
    corpus: list[tuple[dict, tuple[str, int, int]]] = []

    @settings(max_examples=size, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(envelope=envelopes(), mutation=mutations())
    def collect(envelope, mutation):
        corpus.append((envelope, mutation))

    random.seed(seed)
    collect()
    return corpus


class Frames:
    """Frame n: corpus entry n mod size, packed with id n, sometimes freshly mutated."""

    def __init__(self, corpus: list, token: str, seed: int) -> None:
        self.corpus, self.token, self.rng = corpus, token, random.Random(seed)

    def frame(self, n: int) -> tuple[bytes, bool]:
        envelope, mutation = self.corpus[n % len(self.corpus)]
        if self.rng.random() < 0.2:
            mutation = (self.rng.choice(MUTATIONS), self.rng.randrange(1 << 16),
                        self.rng.randrange(256))
        data = pack(envelope, self.token, rid=n)
        return mutate(data, *mutation), mutation[0] == "none"


def run_zmq(endpoint: str, frames: Frames, ids: range, tally: Tally) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    waiting: set[int] = set()  # intact frames' ids not yet answered
    in_flight = 0
    it = iter(ids)
    exhausted = False
    try:
        while not exhausted or in_flight:
            while not exhausted and in_flight < WINDOW:
                n = next(it, None)
                if n is None:
                    exhausted = True
                    break
                data, intact = frames.frame(n)
                sock.send(data)
                tally.frames += 1
                in_flight += 1
                if intact:
                    waiting.add(n)
            if not in_flight:
                break
            if not sock.poll(DEADLINE * 1000):
                tally.violation(f"{in_flight} requests unanswered after {DEADLINE:g} s")
                return
            while sock.poll(0):
                in_flight -= 1
                message = tally.check(sock.recv(), None)
                # A mutated frame may carry any id (a flipped byte can turn one into another's):
                # exactly-once is checked by id for intact frames, by count for all.
                rid = message.get("id") if message else None
                if isinstance(rid, int):
                    waiting.discard(rid)
        if waiting:
            tally.violation(f"{len(waiting)} intact requests never answered by id")
    finally:
        sock.close()


def run_py4j(port: int, token: str, frames: Frames, ids: range, tally: Tally) -> None:
    peers = [Py4JPeer(port, token, timeout=DEADLINE) for _ in range(2)]
    try:
        for i, n in enumerate(ids):
            data, intact = frames.frame(n)
            tally.frames += 1
            tally.check(peers[i % 2].apply(data), n if intact else None)
    finally:
        for peer in peers:
            peer.close()


def unauthenticated_py4j(port: int, count: int) -> int:
    """Connections that send a request before py4j auth; returns how many the front closed."""
    closed = 0
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"c\nt\napply\nsrequest\njAA==\ne\n")
            try:
                closed += sock.recv(100) == b""
            except ConnectionResetError:
                closed += 1
    return closed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--corpus", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    corpus = build_corpus(args.corpus, args.seed)
    print(f"corpus: {len(corpus)} envelopes drawn by hypothesis in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "max-size": 2},
                              "scaling": {"enabled": False}})
    sidecar.start()
    try:
        return fuzz(sidecar, corpus, args)
    finally:
        sidecar.stop()


def fuzz(sidecar: SidecarProcess, corpus: list, args: argparse.Namespace) -> int:
    probe = sidecar.client(timeout=10.0)
    frames = Frames(corpus, sidecar.token, args.seed)
    warm = Tally()  # the connections exist and the workers are warm before "before"
    run_zmq(sidecar.endpoint, frames, range(0, 2000), warm)
    crashes_before = probe.health()["pool"]["counters"].get("crashes", 0)
    before = resources(sidecar.proc.pid)
    py4j_frames = int(args.frames * PY4J_SHARE)
    zmq_tally, py4j_tally = Tally(), Tally()
    started = time.monotonic()
    py4j = threading.Thread(target=run_py4j, args=(
        sidecar.py4j_port, sidecar.token, frames, range(10 ** 9, 10 ** 9 + py4j_frames),
        py4j_tally))
    py4j.start()
    run_zmq(sidecar.endpoint, frames, range(2000, 2000 + args.frames - py4j_frames), zmq_tally)
    py4j.join()
    elapsed = time.monotonic() - started
    closed = unauthenticated_py4j(sidecar.py4j_port, 200)
    wait_until(lambda: probe.health()["pool"]["workers_by_state"]["busy"] == 0, DEADLINE,
               message="workers idle after the fuzz")
    wait_until(lambda: resources(sidecar.proc.pid)["fds"] <= before["fds"], 5.0,
               message="descriptors back to the count before")
    after = resources(sidecar.proc.pid)
    crashes = probe.health()["pool"]["counters"].get("crashes", 0) - crashes_before
    kinds = zmq_tally.kinds + py4j_tally.kinds
    violations = warm.violations + zmq_tally.violations + py4j_tally.violations
    sent = zmq_tally.frames + py4j_tally.frames
    replies = zmq_tally.replies + py4j_tally.replies
    print(f"frames sent: {sent:,} (ZeroMQ {zmq_tally.frames:,}, Py4J {py4j_tally.frames:,}) "
          f"in {elapsed:.0f} s ({sent / elapsed:,.0f}/s)")
    print(f"replies: {replies:,}; kinds seen: {dict(kinds.most_common())}")
    print(f"worker crashes: {crashes}")
    print(f"unauthenticated Py4J connections closed by the front: {closed}/200")
    for key, unit in (("rss", "MiB"), ("fds", ""), ("threads", "")):
        b, a = before[key], after[key]
        if unit:
            b, a = b / (1 << 20), a / (1 << 20)
        print(f"sidecar {key}: {b:.1f} -> {a:.1f} {unit}".rstrip())
    problems = list(violations)
    if replies != sent:
        problems.append(f"{sent - replies} requests without a reply")
    if crashes:
        problems.append(f"{crashes} worker crashes")
    if closed != 200:
        problems.append(f"{200 - closed} unauthenticated Py4J connections left open")
    if after["fds"] > before["fds"] or after["threads"] > before["threads"]:
        problems.append(f"fds/threads grew: {before} -> {after}")
    if after["rss"] - before["rss"] > RSS_GROWTH_LIMIT:
        problems.append(f"RSS grew by {(after['rss'] - before['rss']) >> 20} MiB")
    for problem in problems[:20]:
        print(f"VIOLATION: {problem}")
    print("fuzz: OK" if not problems else f"fuzz: {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
