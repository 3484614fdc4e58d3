"""CPU per trivial call before and after, in the same run as cpu_per_call's floors.

    .venv/bin/python benchmarks/cpu_per_call.py --before build/before [--calls N] [--rounds R]

``benchmarks/cpu_per_call.py --before TREE`` adds these figures to every round: a sidecar from
this tree and one from TREE (one worker each, the same config and pinning as the main figure),
each called by its own tree's client in a driver process (``benchmarks/before_tree.py``), so
the before client is TREE's ``bridge.client`` and both clients are measured alike. Per round,
for each tree: the sidecar process, its workers and the client driver's CPU per call
(``after_sidecar``, ``before_worker``, ...); the two trees go in turn, the order swapped every
round, between the round's two ``pipe_echo_side`` floors. Like cpu_per_call's: ``us`` is the
median over rounds, a multiple the median of each round's figure over that round's floor, and
after/before the median of each round's after over the same round's before (a paired ratio:
a burst of load in one round moves both trees' figures of that round alike).

Owns: these figures and their table. Must not touch: the library, the guard's figures
(``GUARDED`` in cpu_per_call: they never depend on the before tree).
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.before_tree import before_tree_problem, start_pair, stop_pair

PROCESSES = ("sidecar", "worker", "client")
LABELS = {"sidecar": "sidecar process", "worker": "worker", "client": "CPython client process"}
TREES = ("after", "before")
# The Jython rows (label, figure, floor): each JVM's own figures over its own echo floor.
JYTHON = (("Jython thread (Py4J)", "jython_py4j_thread", "py4j_echo_thread"),
          ("Jython thread (ZeroMQ)", "jython_zmq_thread", "py4j_echo_thread"),
          ("sidecar (Jython, Py4J)", "jython_py4j_sidecar", "pipe_echo_side"),
          ("sidecar (Jython, ZeroMQ)", "jython_zmq_sidecar", "pipe_echo_side"))


class BeforeAfter:
    """Both trees' sidecars and client drivers, measured in each round of cpu_per_call."""

    def __init__(self, tree: str, config: dict[str, Any]) -> None:
        from benchmarks.cpu_per_call import children_cpu_ns, cpu_ns

        self.cpu_ns, self.children_cpu_ns = cpu_ns, children_cpu_ns
        self.tree = tree
        self.sidecars, self.clients = start_pair(tree, config, workers=1)
        self.turn = 0

    def measure(self, calls: int) -> dict[str, float]:
        figures: dict[str, float] = {}
        order = TREES if self.turn % 2 == 0 else TREES[::-1]
        self.turn += 1
        for name in order:
            side, client = self.sidecars[name].proc.pid, self.clients[name].pid
            s0, w0, c0 = self.cpu_ns(side), self.children_cpu_ns(side), self.cpu_ns(client)
            self.clients[name].calls(calls)
            s1, w1, c1 = self.cpu_ns(side), self.children_cpu_ns(side), self.cpu_ns(client)
            figures[f"{name}_sidecar"] = (s1 - s0) / calls / 1000.0
            figures[f"{name}_worker"] = (w1 - w0) / calls / 1000.0
            figures[f"{name}_client"] = (c1 - c0) / calls / 1000.0
        return figures

    def close(self) -> None:
        stop_pair(self.sidecars, self.clients)


def open_before(tree: str | None, config: dict[str, Any]) -> BeforeAfter | None:
    """The before/after pair, or None (with the reason printed) when TREE is not usable."""
    if tree is None:
        return None
    problem = before_tree_problem(tree)
    if problem:
        print(f"before/after: {problem}")
        return None
    return BeforeAfter(tree, config)


def summarize(per_round: list[dict[str, float]], multiples: dict[str, float]
              ) -> dict[str, Any] | None:
    """Multiples of the same round's floor (into ``multiples``) and after/before ratios."""
    rows = [r for r in per_round if "before_sidecar" in r]
    if not rows:
        return None
    ratios = {}
    for process in PROCESSES:
        for tree in TREES:
            multiples[f"{tree}_{process}"] = statistics.median(
                r[f"{tree}_{process}"] / r["pipe_echo_side"] for r in rows)
        ratios[process] = statistics.median(r[f"after_{process}"] / r[f"before_{process}"]
                                            for r in rows if r[f"before_{process}"])
    for _label, key, floor in JYTHON:
        both = [r for r in rows if f"before_{key}" in r and key in r]
        if not both:
            continue
        theirs = floor if floor == "pipe_echo_side" else f"before_{floor}"
        multiples[f"before_{key}"] = statistics.median(
            r[f"before_{key}"] / r[theirs] for r in both)
        multiples[f"after_{key}"] = statistics.median(r[key] / r[floor] for r in both)
        ratios[key] = statistics.median(r[key] / r[f"before_{key}"] for r in both)
    return ratios


def print_table(result: dict[str, Any]) -> None:
    ratios = result.get("after_over_before")
    if not ratios:
        return
    med, mult = result["median_us"], result["multiples"]
    tree = result.get("before_tree", "before")
    print(f"\nBefore ({tree}) and after (this tree), same run, same floor "
          f"(pipe_echo_side {med['pipe_echo_side']:.1f} us), each tree's own client:")
    print(f"  {'process':24} {'before us':>10} {'x floor':>8} {'after us':>10} {'x floor':>8} "
          f"{'after/before':>13}  (medians over rounds; ratios paired per round)")
    for process in PROCESSES:
        print(f"  {LABELS[process]:24} {med[f'before_{process}']:10.1f} "
              f"{mult[f'before_{process}']:7.2f}x {med[f'after_{process}']:10.1f} "
              f"{mult[f'after_{process}']:7.2f}x {ratios[process]:12.2f}x")
    for label, key, _floor in JYTHON:
        if key not in ratios:
            continue
        print(f"  {label:24} {med[f'before_{key}']:10.1f} {mult[f'before_{key}']:7.2f}x "
              f"{med[key]:10.1f} {mult[f'after_{key}']:7.2f}x {ratios[key]:12.2f}x")
    if "before_py4j_echo_thread" in med:
        print(f"  (Jython rows: each JVM's thread over its own py4j_echo_thread, before "
              f"{med['before_py4j_echo_thread']:.1f} us, after {med['py4j_echo_thread']:.1f} us;"
              " the sidecar over pipe_echo_side)")
