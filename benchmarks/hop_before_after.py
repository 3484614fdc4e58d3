"""The sidecar hop before and after, against ProcessPoolExecutor, interleaved in one run.

    mkdir -p /tmp/base && git archive 2ac904e | tar -x -C /tmp/base   # the tree before
    cd /tmp && BEFORE=/tmp/base /work/wt/spawn/.venv/bin/python \\
        /work/wt/spawn/benchmarks/hop_before_after.py

A sidecar from BEFORE and one from this tree (2 workers each), PPE(1) and PPE(2): medians of
``execute("1+1")`` and ``call("operator:add", 1, 2)`` from one thread, calls/s from 8 threads;
the order rotates every round so drift and the neighbours' load hit all alike. Run it from
outside the tree (``python -m sidecar`` would find the current folder's package first).
``BEFORE`` may name several trees, ``:``-separated; each is reported under its folder's name.
"""

from __future__ import annotations

import operator
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.measure import median_us, per_second  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

CONFIG = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2}}


class BeforeSidecar(SidecarProcess):
    """A sidecar run from another tree (its ``PYTHONPATH``)."""

    def __init__(self, tree: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tree = tree

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["PYTHONPATH"] = self.tree
        return env


def measure(run_exec, run_call, run_many, n: int, into: dict[str, list[float]]) -> None:
    into["exec"].append(median_us(run_exec, n))
    into["call"].append(median_us(run_call, n))
    into["rate"].append(per_second(run_many))


def main() -> None:
    n, rounds = int(os.environ.get("N", "600")), int(os.environ.get("ROUNDS", "6"))
    trees = os.environ.get("BEFORE", "/tmp/base").split(":")
    procs = {os.path.basename(tree.rstrip("/")) or tree:
             BeforeSidecar(tree, CONFIG, workdir=tempfile.mkdtemp()).start() for tree in trees}
    procs["after"] = SidecarProcess(CONFIG, workdir=tempfile.mkdtemp()).start()
    results = {name: {"exec": [], "call": [], "rate": []} for name in [*procs, "ppe"]}
    try:
        clients = {name: proc.client(timeout=10) for name, proc in procs.items()}
        for client in clients.values():
            for _ in range(300):
                client.execute("1+1")
        with ProcessPoolExecutor(1) as ppe1, ProcessPoolExecutor(2) as ppe2:
            ppe1.submit(eval, "1+1").result()
            ppe2.submit(operator.add, 1, 2).result()
            for round_ in range(rounds):
                order = [*clients, "ppe"]
                turn = round_ % len(order)
                for name in order[turn:] + order[:turn]:
                    if name == "ppe":
                        measure(lambda: ppe1.submit(eval, "1+1").result(),
                                lambda: ppe1.submit(operator.add, 1, 2).result(),
                                lambda: ppe2.submit(operator.add, 1, 2).result(), n,
                                results[name])
                        continue
                    c = clients[name]
                    measure(lambda c=c: c.execute("1+1"), lambda c=c: c.call("operator:add", 1, 2),
                            lambda c=c: c.call("operator:add", 1, 2), n, results[name])
    finally:
        for proc in procs.values():
            proc.stop()
    m = {name: {k: statistics.median(v) for k, v in d.items()} for name, d in results.items()}
    ppe = m["ppe"]
    print(f"load {os.getloadavg()[0]:.1f}; PPE(1): execute {ppe['exec']:.0f} us, call "
          f"{ppe['call']:.0f} us; PPE(2), 8 threads: {ppe['rate']:.0f} calls/s")
    for name in procs:
        r = m[name]
        print(f"  {name:14s} execute {r['exec']:5.0f} us ({r['exec'] / ppe['exec']:.2f}x)  call "
              f"{r['call']:5.0f} us ({r['call'] / ppe['call']:.2f}x)  8 threads "
              f"{r['rate']:5.0f}/s ({r['rate'] / ppe['rate']:.2f}x)")


if __name__ == "__main__":
    main()
