"""Throughput before and after, same run: one sidecar from this tree and one from TREE, each
called by its own tree's client from 8 threads, beside ``ProcessPoolExecutor`` and
``multiprocessing.Pool`` of the same size (2 and 4 workers).

    .venv/bin/python benchmarks/throughput.py --before build/before [--seconds 0.5]

Both sidecars are called from a client driver process (``benchmarks/client_driver.py``, 8
threads released at once, as ``throughput.calls_per_second``), so the before client is TREE's
``bridge.client`` (9f4ee9f's front is NULL ZeroMQ) and both are measured alike; PPE and
``multiprocessing.Pool`` are called from this process's 8 threads. Each of the four is
measured in ``repeats`` windows, alternating, the order rotated; the median of each. No
pinning: throughput uses every core. Writes ``benchmarks/results/throughput_before_after.json``.

Owns: these figures. Must not touch: the library (it only calls it).
"""

from __future__ import annotations

import multiprocessing
import operator
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.before_tree import before_tree_problem, start_pair, stop_pair
from benchmarks.throughput import calls_per_second, pool_config

WORKERS = (2, 4)
THREADS = 8
RESULTS = Path(__file__).resolve().parent / "results" / "throughput_before_after.json"
PEERS = ("ours", "ours_unix", "before", "ppe", "mp_pool")
GOAL_4W = 15000.0  # issue 21: one sidecar, 4 workers


def measure_size(tree: str, workers: int, seconds: float, repeats: int) -> dict[str, float]:
    """The median calls/s of each peer at this pool size (THREADS client threads)."""
    sidecars, clients = start_pair(tree, pool_config(workers), workers)
    try:
        with ProcessPoolExecutor(workers) as ppe, multiprocessing.Pool(workers) as mpool:
            for _ in range(20 * workers):  # warm: every worker process exists
                assert ppe.submit(operator.add, 1, 2).result() == 3
                assert mpool.apply(operator.add, (1, 2)) == 3
            peers = {
                "ours": lambda: clients["after"].rate(THREADS, seconds),
                "ours_unix": lambda: clients["after_unix"].rate(THREADS, seconds),
                "before": lambda: clients["before"].rate(THREADS, seconds),
                "ppe": lambda: calls_per_second(
                    lambda: ppe.submit(operator.add, 1, 2).result(), THREADS, seconds),
                "mp_pool": lambda: calls_per_second(
                    lambda: mpool.apply(operator.add, (1, 2)), THREADS, seconds),
            }
            windows: dict[str, list[float]] = {name: [] for name in PEERS}
            for repeat in range(repeats):
                shift = repeat % len(PEERS)
                for name in PEERS[shift:] + PEERS[:shift]:
                    windows[name].append(peers[name]())
    finally:
        stop_pair(sidecars, clients)
    return {name: statistics.median(v) for name, v in windows.items()}


def rows_of(workers: int, got: dict[str, float], tree: str) -> list[dict[str, Any]]:
    peers = (("ppe", f"ProcessPoolExecutor({workers})"),
             ("mp_pool", f"multiprocessing.Pool({workers})"),
             ("before", f"the sidecar of {tree} ({workers} workers, its client)"))
    rows = []
    for ours_key, how in (("ours", "ZeroMQ"), ("ours_unix", "Unix socket")):
        ours = got[ours_key]
        rows += [{"figure": f"throughput {workers}w {THREADS}t ({how}) / {peer}",
                  "ours": ours, "peer": got[peer], "ratio": ours / got[peer],
                  "unit": "calls/s", "goal": "", "peer_name": name, "workers": workers,
                  "threads": THREADS} for peer, name in peers]
        if workers == 4:
            rows.append({"figure": f"one sidecar, 4 workers, {THREADS} threads ({how})",
                         "ours": ours, "peer": GOAL_4W, "ratio": ours / GOAL_4W,
                         "unit": "calls/s", "goal": ">= 1.0x (15,000 calls/s)",
                         "peer_name": "issue 21's goal", "workers": workers,
                         "threads": THREADS})
    return rows


def run(tree: str, seconds: float = 0.5, repeats: int = 3,
        workers_list: tuple[int, ...] = WORKERS) -> list[dict[str, Any]]:
    """Every row, the table printed; [] (the reason printed) when TREE is unusable."""
    problem = before_tree_problem(tree)
    if problem:
        print(f"throughput before/after: {problem}")
        return []
    print(f"\nThroughput, one sidecar, {THREADS} client threads, trivial calls, same run "
          f"(median of {repeats} alternating windows of {seconds:g} s), calls/s:")
    print(f"  {'workers':>7} {'ours':>8} {'ours/unix':>9} {'before':>8} {'PPE':>8} "
          f"{'mp.Pool':>8} {'ours/PPE':>9} {'unix/PPE':>9} {'ours/mp.Pool':>13} "
          f"{'after/before':>13}")
    rows: list[dict[str, Any]] = []
    for workers in workers_list:
        got = measure_size(tree, workers, seconds, repeats)
        rows += rows_of(workers, got, tree)
        print(f"  {workers:7d} {got['ours']:8.0f} {got['ours_unix']:9.0f} {got['before']:8.0f} "
              f"{got['ppe']:8.0f} {got['mp_pool']:8.0f} {got['ours'] / got['ppe']:8.2f}x "
              f"{got['ours_unix'] / got['ppe']:8.2f}x {got['ours'] / got['mp_pool']:12.2f}x "
              f"{got['ours'] / got['before']:12.2f}x", flush=True)
        if workers == 4:
            print(f"          one sidecar, 4 workers: {got['ours']:.0f} calls/s over ZeroMQ, "
                  f"{got['ours_unix']:.0f} over its Unix socket (issue 21's goal: >= "
                  f"{GOAL_4W:,.0f})", flush=True)
    return rows
