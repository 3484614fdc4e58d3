"""Large values: replies, requests and round trips of 1 KiB to 64 MiB (``bytes``), through the
CPython client and a real sidecar, against ``ProcessPoolExecutor`` moving the same bytes
(pickle) in the same run.

    .venv/bin/python benchmarks/payload_scaling.py [--short] [--max-mib 64] [--out PATH]

Prints a table (MB/s both, ratio of times ours/PPE) and writes
``benchmarks/results/payload_scaling.json`` (rows as in benchmarks/results/README.md).

Owns: this figure. Must not touch: the library (it only calls it). The calls use builtins
(``bytes``, ``len``, ``copy.copy``) as targets, so the script measures any checkout's sidecar:
``PYTHONPATH=/path/to/other/checkout python benchmarks/payload_scaling.py`` gives a
before/after in the same conditions.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import write_rows  # noqa: E402
from sidecar.testing import SidecarProcess  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
SIZES = (KIB, 64 * KIB, MIB, 4 * MIB, 16 * MIB, 32 * MIB, 64 * MIB)
SHORT_SIZES = (KIB, 64 * KIB, MIB)
RESULTS = Path(__file__).resolve().parent / "results" / "payload_scaling.json"
GOALS = {("reply", 32 * MIB): "<= 1.5x"}


def label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def median_seconds(fn: Callable[[], Any], size: int, check: Callable[[Any], bool]) -> float:
    """Median of a few timed calls (more for small sizes), after one untimed warm-up."""
    rounds = 21 if size <= 64 * KIB else 7 if size <= 4 * MIB else 3
    if not check(fn()):
        raise AssertionError(f"a {label(size)} value did not come back intact")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cases(client: Any, ppe: ProcessPoolExecutor, size: int) -> dict[str, tuple[Callable, Callable,
                                                                          Callable]]:
    data = b"\x5a" * size
    return {
        "reply": (lambda: client.call("builtins:bytes", size),
                  lambda: ppe.submit(bytes, size).result(),
                  lambda value: value == bytes(size)),
        "request": (lambda: client.call("builtins:len", data),
                    lambda: ppe.submit(len, data).result(),
                    lambda value: value == size),
        "round trip": (lambda: client.call("copy:copy", data),
                       lambda: ppe.submit(copy.copy, data).result(),
                       lambda value: value == data),
    }


def run(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    limit = max(sizes) + 16 * MIB
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1},
                              "bridge": {"max-message-size": limit}})
    sidecar.start()
    rows = []
    try:
        client = sidecar.client(timeout=120)
        with ProcessPoolExecutor(1) as ppe:
            ppe.submit(len, b"").result()
            for size in sizes:
                for kind, (ours, peer, check) in cases(client, ppe, size).items():
                    ours_s = median_seconds(ours, size, check)
                    peer_s = median_seconds(peer, size, check)
                    rows.append({"figure": f"{kind} {label(size)} / PPE", "ours": ours_s * 1e3,
                                 "peer": peer_s * 1e3, "ratio": ours_s / peer_s, "unit": "ms",
                                 "goal": GOALS.get((kind, size), ""),
                                 "peer_name": "ProcessPoolExecutor(1), pickle",
                                 "bytes": size, "ours_mb_s": size / ours_s / 1e6,
                                 "peer_mb_s": size / peer_s / 1e6})
                    print_row(rows[-1])
    finally:
        sidecar.stop()
    return rows


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['figure']:28s} ours {row['ours']:9.2f} ms {row['ours_mb_s']:8.0f} MB/s   "
          f"PPE {row['peer']:9.2f} ms {row['peer_mb_s']:8.0f} MB/s   {row['ratio']:6.2f}x"
          f"{'   goal ' + row['goal'] if row['goal'] else ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1 KiB to 1 MiB only (CI smoke)")
    parser.add_argument("--max-mib", type=int, default=64, help="largest size, MiB")
    parser.add_argument("--out", default=str(RESULTS), help="where the JSON rows go")
    args = parser.parse_args(argv)
    sizes = SHORT_SIZES if args.short else tuple(s for s in SIZES if s <= args.max_mib * MIB)
    rows = run(sizes)
    return write_rows(rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
