"""Throughput (issue 10 item 6): calls/s against client threads and pool size, ours against
``ProcessPoolExecutor`` and ``multiprocessing.Pool`` of the same size, in the same run; and real
Jython gateway threads against the CPython client's 8 threads on the same sidecar.

    .venv/bin/python benchmarks/throughput.py [--short] [--seconds 0.5] [--no-jython]
    .venv/bin/python benchmarks/throughput.py --before build/before   # issue 21's same-run
                                                                      # before/after only

Every call is ``operator.add(1, 2)``: the figure is the per-call cost under concurrency, not
work. For each pool size one sidecar (scaling off, so the size stays put), one PPE and one
``multiprocessing.Pool`` live side by side; for each thread count the three are measured in
alternating windows (3 each, the order rotated; the median of each), so a burst of load from
the machine's other users falls on all of them alike. Writes
``benchmarks/results/throughput.json`` (rows as in results/README.md).

Owns: these figures. Must not touch: the library (it only calls it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import operator
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.client_driver import rate  # noqa: E402
from benchmarks.measure import write_rows  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

THREADS = (1, 2, 4, 8, 16, 32, 64)
WORKERS = (1, 2, 3, 4)
JYTHON_THREADS = (1, 4, 16, 64)
SHORT_THREADS, SHORT_WORKERS, SHORT_JYTHON_THREADS = (1, 8), (2,), (1, 16)
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "throughput.json"


def calls_per_second(call: Callable[[], Any], threads: int, seconds: float) -> float:
    """Calls per second from ``threads`` threads calling in a loop for about ``seconds``,
    all released at once (``client_driver.rate``: thread start-up is not counted)."""
    calls, elapsed = rate(call, threads, seconds)
    return calls / elapsed


def pool_config(workers: int) -> dict[str, Any]:
    return {"pool": {"initial-size": workers, "min-size": workers, "max-size": workers},
            "scaling": {"enabled": False}}


def run_matrix(workers_list: tuple[int, ...] = WORKERS, threads_list: tuple[int, ...] = THREADS,
               seconds: float = 0.3, repeats: int = 3) -> list[dict[str, Any]]:
    rows = []
    for workers in workers_list:
        rows += measure_pool_size(workers, threads_list, seconds, repeats)
    return rows


def measure_pool_size(workers: int, threads_list: tuple[int, ...], seconds: float,
                      repeats: int = 3) -> list[dict[str, Any]]:
    rows = []
    sidecar = SidecarProcess(pool_config(workers))
    sidecar.start()
    try:
        client = sidecar.client(timeout=30)
        with ProcessPoolExecutor(workers) as ppe, multiprocessing.Pool(workers) as mpool:
            peers = {
                "ours": lambda: client.call("operator:add", 1, 2),
                "ppe": lambda: ppe.submit(operator.add, 1, 2).result(),
                "mp_pool": lambda: mpool.apply(operator.add, (1, 2)),
            }
            for name, call in peers.items():  # warm: every worker process exists
                for _ in range(20 * workers):
                    assert call() == 3, name
            for turn, threads in enumerate(threads_list):
                # `repeats` windows each, alternating, the order rotated: median per peer
                windows: dict[str, list[float]] = {n: [] for n in peers}
                for repeat in range(repeats):
                    names = list(peers)
                    shift = (turn + repeat) % 3
                    for n in names[shift:] + names[:shift]:
                        windows[n].append(calls_per_second(peers[n], threads, seconds))
                got = {n: statistics.median(v) for n, v in windows.items()}
                for peer, peer_name in (("ppe", f"ProcessPoolExecutor({workers})"),
                                        ("mp_pool", f"multiprocessing.Pool({workers})")):
                    rows.append({"figure": f"throughput {workers}w {threads}t / {peer}",
                                 "ours": got["ours"], "peer": got[peer],
                                 "ratio": got["ours"] / got[peer], "unit": "calls/s",
                                 "goal": ">= 1.2x" if (workers, threads, peer) == (2, 8, "ppe")
                                 else "", "peer_name": peer_name,
                                 "workers": workers, "threads": threads})
                    print_row(rows[-1])
    finally:
        sidecar.stop()
    return rows


def run_jython(threads_list: tuple[int, ...] = JYTHON_THREADS, seconds: float = 1.0,
               workers: int = 2) -> list[dict[str, Any]]:
    """Real Jython 2.7 gateway threads calling ``python3.call`` over Py4J, each thread count
    against the CPython client's 8 threads on the same sidecar, measured right before and after
    it (the mean of the two is the peer)."""
    from tests.jython import jvm

    sidecar = SidecarProcess(pool_config(workers), py4j_port=0)
    sidecar.start()
    rows = []
    try:
        client = sidecar.client(timeout=30)

        def cpython_8_threads() -> float:
            return calls_per_second(lambda: client.call("operator:add", 1, 2), 8, seconds)

        env = dict(os.environ, PY3_LIBRARY_DIR=str(jvm.LIBRARY), PY3_HARNESS_DIR=str(jvm.JY),
                   PY3_SETTINGS=json.dumps({"CONNECTION_FILE": str(sidecar.connection_file)}))
        proc = subprocess.Popen(
            # As jython_bench.py: the JIT's full tiers (the test harness stops at C1).
            ["java", "-Xss2m", "-cp", jvm.classpath(), "-Dpython.cachedir.skip=true",
             "org.python.util.jython", str(HERE / "jy" / "bench_threads.py"), str(seconds),
             *map(str, threads_list)],
            env=env, cwd=str(jvm.JY), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        out: list[str] = []
        try:
            # The Jython side says READY <threads> before each window and waits for GO, so the
            # CPython figure is taken just before it, with the JVM idle.
            for line in proc.stdout:
                out.append(line.rstrip("\n"))
                if line.startswith("READY "):
                    before = cpython_8_threads()
                    proc.stdin.write("GO\n")
                    proc.stdin.flush()
                elif line.startswith("TPUT "):
                    _, threads, per_s = line.split()
                    after = cpython_8_threads()
                    peer = (before + after) / 2
                    rows.append({"figure": f"jython {threads} gateway threads / cpython 8t",
                                 "ours": float(per_s), "peer": peer,
                                 "ratio": float(per_s) / peer, "unit": "calls/s",
                                 "goal": ">= 1.0x" if threads == "16" else "",
                                 "peer_name": f"CPython client, 8 threads, same {workers}-worker "
                                              "sidecar", "workers": workers,
                                 "threads": int(threads)})
                    print_row(rows[-1])
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if "DONE" not in out:
            raise RuntimeError("the Jython throughput run failed:\n" + "\n".join(out[-30:])
                               + "\n" + proc.stderr.read()[-3000:])
    finally:
        sidecar.stop()
    return rows


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['figure']:40s} ours {row['ours']:8.0f}   {row['peer_name']:30.30s} "
          f"{row['peer']:8.0f} {row['unit']}   {row['ratio']:5.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2 workers, 1 and 8 threads")
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="window per figure (3 windows each, alternating: the median)")
    parser.add_argument("--no-jython", action="store_true", help="skip the Jython threads")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON rows go")
    parser.add_argument("--repeats", type=int, default=3,
                        help="windows per figure (alternating, the order rotated: the median)")
    parser.add_argument("--before", metavar="TREE",
                        help="only the before/after figures: 2 and 4 workers, 8 threads, ours, "
                             "TREE's sidecar, PPE and mp.Pool (benchmarks/throughput_before.py)")
    args = parser.parse_args(argv)
    if args.before:
        from benchmarks import throughput_before

        rows = throughput_before.run(args.before, seconds=max(args.seconds, 0.5),
                                     repeats=args.repeats)
        out = throughput_before.RESULTS if args.out == str(RESULTS) else args.out
        return write_rows(rows, out) if rows else 0
    if args.short:
        rows = run_matrix(SHORT_WORKERS, SHORT_THREADS, min(args.seconds, 0.2), repeats=1)
    else:
        rows = run_matrix(seconds=args.seconds, repeats=args.repeats)
    if not args.no_jython:
        rows += run_jython(SHORT_JYTHON_THREADS if args.short else JYTHON_THREADS,
                           seconds=min(args.seconds, 0.3) if args.short else 1.0)
    return write_rows(rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
