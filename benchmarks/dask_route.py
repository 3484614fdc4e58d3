"""Our Dask route (``pool="cluster"``, a ``kind: dask`` pool of a real sidecar) against a bare
``distributed.Client.submit(...).result()`` to the same cluster, in the same run; a local pool's
call beside them; and throughput with 4 Dask workers and 8 calling threads, both ways.

    .venv/bin/python benchmarks/dask_route.py [--short] [--out PATH]

Prints a table and writes ``benchmarks/results/dask_route.json`` (rows as in
benchmarks/results/README.md). Goal (issue 13): our route's median <= 1.2x the bare submit's.

Owns: these figures. Must not touch: the library (it only calls it). The cluster is a real
scheduler and worker processes on loopback (``tests/integration/dask_cluster.py``).
"""

from __future__ import annotations

import argparse
import operator
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "tests" / "integration"))

from dask_cluster import Cluster  # noqa: E402

from benchmarks.measure import write_rows  # noqa: E402
from sidecar.testing import SidecarProcess, wait_until  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dask_route.json"


def latencies(fn: Callable[[], Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def interleaved(ours: Callable[[], Any], peer: Callable[[], Any], rounds: int,
                per_round: int) -> tuple[list[float], list[float]]:
    """Alternating blocks, so a noisy moment hurts both sides alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a += latencies(ours, per_round)
        b += latencies(peer, per_round)
    return a, b


def throughput(make_call: Callable[[], Callable[[], Any]], threads: int,
               seconds: float) -> float:
    """Calls per second from ``threads`` threads, each with its own caller."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        call = make_call()
        while time.monotonic() < stop:
            call()
            counts[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def run(short: bool) -> list[dict[str, Any]]:
    from distributed import Client

    n_workers = 2 if short else 4
    rounds, per_round = (3, 30) if short else (10, 200)
    seconds = 1.0 if short else 5.0
    cluster = Cluster(workers=n_workers).start()
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "min-size": 2, "max-size": 2,
                                       "spares": 0},
                              "pools": {"cluster": {"kind": "dask",
                                                    "address": cluster.address}}})
    rows: list[dict[str, Any]] = []
    try:
        sidecar.start()
        ours = sidecar.client(timeout=30)
        wait_until(lambda: ours.health()["pools"]["cluster"]["workers"] == n_workers, 60,
                   message="the sidecar sees the cluster")
        bare = Client(cluster.address, timeout=10, set_as_default=False)

        def ours_call() -> Any:
            return ours.call("operator:add", 1, 2, pool="cluster")

        def bare_call() -> Any:
            return bare.submit(operator.add, 1, 2, pure=False).result()

        def local_call() -> Any:
            return ours.call("operator:add", 1, 2)

        for fn in (ours_call, bare_call, local_call):
            assert fn() == 3
            latencies(fn, 50)  # warm-up
        a, b = interleaved(ours_call, bare_call, rounds, per_round)
        local = latencies(local_call, rounds * per_round)
        peer = "distributed.Client.submit(...).result(), same cluster"
        rows.append(row("Dask route median / bare submit", statistics.median(a),
                        statistics.median(b), "<= 1.2x", peer))
        rows.append(row("Dask route p99 / bare submit", p99(a), p99(b), "", peer))
        rows.append(row("local pool call median / Dask route", statistics.median(local),
                        statistics.median(a), "", "our Dask route"))
        def ours_maker() -> Callable[[], Any]:
            client = sidecar.client(timeout=30)  # one per thread, as the client is used
            return lambda: client.call("operator:add", 1, 2, pool="cluster")

        def bare_maker() -> Callable[[], Any]:
            return bare_call  # one distributed.Client, thread-safe, as Dask users share it

        ours_tp = throughput(ours_maker, 8, seconds)
        bare_tp = throughput(bare_maker, 8, seconds)
        rows.append({"figure": f"Dask throughput, {n_workers} workers, 8 threads / bare",
                     "ours": ours_tp, "peer": bare_tp, "ratio": ours_tp / bare_tp,
                     "unit": "calls/s", "goal": "", "peer_name": "bare submit, 8 threads"})
        bare.close()
    finally:
        sidecar.stop()
        cluster.close()
    return rows


def row(figure: str, ours_s: float, peer_s: float, goal: str, peer: str) -> dict[str, Any]:
    return {"figure": figure, "ours": ours_s * 1e3, "peer": peer_s * 1e3,
            "ratio": ours_s / peer_s, "unit": "ms", "goal": goal, "peer_name": peer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2 workers, a few calls (CI)")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON rows go")
    args = parser.parse_args(argv)
    rows = run(args.short)
    for r in rows:
        print(f"{r['figure']:52s} ours {r['ours']:9.3f} {r['unit']:8s} peer {r['peer']:9.3f} "
              f"{r['unit']:8s} {r['ratio']:6.2f}x{'   goal ' + r['goal'] if r['goal'] else ''}")
    return write_rows(rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
