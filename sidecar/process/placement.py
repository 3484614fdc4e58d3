"""CPU placement: which CPUs the sidecar and its workers may run on (``sched_setaffinity``).

``python3.pool.cpu-affinity`` pins the sidecar (every thread: the loop, ZeroMQ's I/O thread,
py4j and HTTP threads) and, by inheritance, its workers; ``python3.worker.cpu-affinity`` pins
the workers (and the template they are forked from) elsewhere. Both read like ``taskset -c``:
``"0"``, ``"0-1"``, ``"0,2-3"``; empty leaves the kernel free. What it does on the 2-core test
machine is measured in docs/performance.md ("The sidecar hop").

Owns: parsing a CPU list and applying it to this process. Must not touch: anything else.
"""

from __future__ import annotations

import os


def parse_cpus(text: str, key: str) -> list[int]:
    """``"0,2-3"`` -> ``[0, 2, 3]``; ``""`` -> ``[]``. ``ValueError`` names ``key``."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"{key}: {part!r} is not a CPU number or range (e.g. 0 or 0-1); "
                             "write it as taskset -c does, or leave it empty") from None
        if first < 0 or last < first:
            raise ValueError(f"{key}: {part!r} is not a range of CPUs (e.g. 0-1)")
        cpus.update(range(first, last + 1))
    count = os.cpu_count() or 1
    if cpus and max(cpus) >= count:
        raise ValueError(f"{key}: this machine has CPUs 0-{count - 1}, not {max(cpus)}")
    return sorted(cpus)


def pin_process(cpus: list[int]) -> None:
    """Every thread of this process (and what it starts later) on ``cpus``; [] does nothing."""
    if not cpus:
        return
    wanted = set(cpus)
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, wanted)
        except OSError:
            pass  # a thread that just ended
