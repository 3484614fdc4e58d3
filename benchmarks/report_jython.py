"""The report's Jython part: whatever ``benchmarks/jython_bench.py`` offers, as rows (the call
and ping pairs against the bare echoes, and its Dataset figures for the datasets part).

Owns: reading jython_bench's figures into rows. Must not touch: the Jython benchmark itself.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from benchmarks.report_rows import Row

JYTHON_PAIRS = (  # (figure, ours, peer, which: 0 median / 1 p99)
    ("python3.call py4j median / bare py4j echo", "python3_call_py4j", "bare_py4j_echo", 0),
    ("python3.call py4j p99 / bare py4j echo p99", "python3_call_py4j", "bare_py4j_echo", 1),
    ("python3.ping py4j median / bare py4j echo", "python3_ping_py4j", "bare_py4j_echo", 0),
    ("python3.call zmq median / bare JeroMQ echo", "python3_call_zmq", "bare_jeromq_echo", 0),
    ("python3.call zmq p99 / bare JeroMQ echo p99", "python3_call_zmq", "bare_jeromq_echo", 1),
    ("python3.call py4j median / CPython client call", "python3_call_py4j",
     "cpython_client_call", 0),
)


JYTHON_FIGURES: dict[str, Any] = {}  # this run's, kept for the datasets part
JYTHON_DATASET_ROWS = 100_000  # the 100,000 rows x 5 columns
JYTHON_DATASET_OPS = ("send", "describe", "unchanged")


def run_jython_bench(n: int, dataset_rows: int) -> dict[str, Any]:
    """``jython_bench.run`` as the file in this checkout has it: ``run(n)``, or
    ``run(n, datasets)`` (rows of its Dataset cases, 0 to skip them) once it has them."""
    import inspect

    from benchmarks import jython_bench

    params = inspect.signature(jython_bench.run).parameters
    if len(params) >= 2:
        return jython_bench.run(n, dataset_rows)
    return jython_bench.run(n)


def measure_jython(short: bool) -> list[Row]:
    """Calls whatever ``benchmarks/jython_bench.py`` offers: ``run(...)`` returning
    ``{figure: (median_us, p99_us)}`` (``dataset_*`` figures in ms go to the datasets part).
    A figure ``<name>~echo`` (the echo sampled call by call alongside) is preferred as the
    peer. Figures it gains later appear as rows of their own."""
    if shutil.which("java") is None:
        print("java is not installed (`make system-deps`): the Jython rows are not measured")
        return []
    # --short: Py4J only (the transport Ignition uses by default), few timed calls, no Datasets
    transports = os.environ.get("BENCH_TRANSPORTS")
    if short:
        os.environ["BENCH_TRANSPORTS"] = '["py4j"]'
    try:
        figures = run_jython_bench(500 if short else 20000, 0 if short else JYTHON_DATASET_ROWS)
    finally:
        if transports is None:
            os.environ.pop("BENCH_TRANSPORTS", None)
        else:
            os.environ["BENCH_TRANSPORTS"] = transports
    JYTHON_FIGURES.clear()
    JYTHON_FIGURES.update(figures)
    rows = []
    for figure, ours, peer, which in JYTHON_PAIRS:
        if f"{ours}~echo" in figures and peer.startswith("bare"):
            peer = f"{ours}~echo"
        o, p = figures.get(ours), figures.get(peer)
        name = ("bare py4j echo, sampled call by call alongside" if peer.endswith("~echo")
                else peer.replace("_", " "))
        rows.append(Row("jython", figure, o[which] if o else None, p[which] if p else None,
                        "us", name,
                        note="" if o and p else "jython_bench.py gave no such figure"))
    paired = {name for _, a, b, _ in JYTHON_PAIRS for name in (a, b, f"{a}~echo")}
    for name, value in figures.items():
        if name not in paired and not name.startswith("dataset"):
            median = value[0] if isinstance(value, (tuple, list)) else value
            rows.append(Row("jython", f"{name} median", median, None, "us", note="no peer"))
    return rows


def jython_bench_dataset_rows() -> list[Row]:
    """Rows from the ``dataset_*`` figures (ms) of this run's jython_bench: send, describe,
    unchanged (``_jython``: the same without the helper jar), each against the bare py4j echo
    of the same request (``dataset_echo_py4j``) when it has one."""
    echo = JYTHON_FIGURES.get("dataset_echo_py4j")
    cells = JYTHON_DATASET_ROWS * 5
    rows = []
    for name, value in JYTHON_FIGURES.items():
        op = name.removeprefix("dataset_").removesuffix("_jython")
        if not name.startswith("dataset_") or op not in JYTHON_DATASET_OPS:
            continue
        plain = name.endswith("_jython")
        rows.append(Row("datasets", f"jython: {op} {cells:,} cells"
                        + (" (no helper jar)" if plain else "") + " / bare py4j echo",
                        value[0], echo[0] if echo else None, "ms",
                        "bare py4j echo of the same request" if echo else "",
                        note="real Jython 2.7 (benchmarks/jython_bench.py)",
                        extra={"cells": cells, "op": op + ("_jython" if plain else ""),
                               "from": "jython"}))
    return rows
