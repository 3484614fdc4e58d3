"""What the benchmark scripts share: timing a call, calls per second from threads, writing a
script's figure rows (``benchmarks/results/README.md``).

Owns: these three measurements. Must not touch: the library (callers pass the calls).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def median_us(call: Callable[[], Any], n: int) -> float:
    """The median of ``n`` timed calls, in microseconds."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def per_second(call: Callable[[], Any], threads: int = 8, seconds: float = 0.5) -> float:
    """Calls per second from ``threads`` threads calling in a loop for about ``seconds``."""
    deadline = time.monotonic() + seconds

    def loop(_: int) -> int:
        done = 0
        while time.monotonic() < deadline:
            call()
            done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(loop, range(threads)))
    return total / (time.monotonic() - started)


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> int:
    """The rows as JSON at ``out`` (its folder made); the scripts' exit status (0)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    print(f"wrote {path}")
    return 0
