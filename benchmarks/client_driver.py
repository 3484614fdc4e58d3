"""A CPython client process that makes trivial calls on command, for before/after figures.

    PYTHONPATH=TREE python benchmarks/client_driver.py ENDPOINT TOKEN WORKERS [CONNECTION_FILE]

It imports ``bridge.client`` from whatever tree ``PYTHONPATH`` names (this file imports nothing
else of the project), so a sidecar from an older tree is called by that tree's own client: the
wire of 9f4ee9f (a NULL ZeroMQ front) is not today's (PLAIN/CURVE). It waits until the sidecar
has WORKERS ready workers, warms up, prints ``ready``, then reads commands from stdin:

- ``CALL N``: N calls of ``call("operator:add", 1, 2)`` on one thread, then prints ``done``;
- ``RATE T S``: T threads calling in a loop for about S seconds (released at once), then
  prints the calls per second, the calls and the seconds they took;
- ``BYTES N SIZE``: N calls of ``call("builtins:bytes", SIZE)`` (a SIZE-byte reply), ``done``;
- ``CPU``: this process's CPU time in ns, the threads that ``RATE`` ended included (``/proc``
  lists live threads only).

``benchmarks/peer_driver.py`` runs the same loop over ``ProcessPoolExecutor`` or
``multiprocessing.Pool``, so the peers' callers are measured alike.

The parent reads this process's CPU from ``/proc/<pid>/task/*/schedstat`` around ``CALL``, so
the driver prints nothing else while it works. ``PY3SIDECAR_BENCH_READY_S`` (default 60): how
long it waits for the workers.

Owns: that driver loop. Must not touch: anything but the client's public calls.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.client import Client  # the tree named by PYTHONPATH


def ready_workers(client: Client) -> int:
    try:
        workers = client.health()["pool"]["workers"]
    except Exception:  # noqa: BLE001 - not up yet (or an older health shape): keep waiting
        return -1
    return sum(1 for w in workers
               if w.get("role", "member") == "member" and w.get("state") in ("idle", "busy"))


def rate(call: Callable[[], Any], threads: int, seconds: float) -> tuple[int, float]:
    """``threads`` threads calling ``call`` in a loop for about ``seconds``, released at once:
    (calls made, seconds from the release to the last thread's end)."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()

    def loop(i: int) -> None:
        barrier.wait()
        done = 0
        while not stop.is_set():
            call()
            done += 1
        counts[i] = done

    pool = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)  # the measuring window itself, not a synchronisation
    stop.set()
    for thread in pool:
        thread.join(60)
    return sum(counts), time.perf_counter() - started


def serve(trivial: Callable[[], Any], reply_of: Callable[[int], Any]) -> None:
    """The command loop on stdin (module docstring); one line back per command."""
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if parts[:1] == ["CALL"]:
            for _ in range(int(parts[1])):
                trivial()
            print("done", flush=True)
        elif parts[:1] == ["RATE"]:
            calls, elapsed = rate(trivial, int(parts[1]), float(parts[2]))
            print(f"{calls / elapsed:.1f} {calls} {elapsed:.6f}", flush=True)
        elif parts[:1] == ["CPU"]:  # this process's CPU, threads that ended included
            print(time.process_time_ns(), flush=True)
        elif parts[:1] == ["BYTES"]:
            size = int(parts[2])
            for _ in range(int(parts[1])):
                if len(reply_of(size)) != size:
                    print(f"error: a {size}-byte reply came back short", flush=True)
                    return
            print("done", flush=True)


def main(argv: list[str]) -> int:
    endpoint, token, workers = argv[0], argv[1], int(argv[2])
    extra = {"connection_file": argv[3]} if len(argv) > 3 else {}
    client = Client(endpoint, token, timeout=30, **extra)
    ready_s = float(os.environ.get("PY3SIDECAR_BENCH_READY_S", "60"))
    deadline = time.monotonic() + ready_s
    while ready_workers(client) < workers:  # every wait has a deadline
        if time.monotonic() > deadline:
            print(f"error: {workers} ready workers not reached within {ready_s:g} s", flush=True)
            return 1
        time.sleep(0.05)
    if client.call("operator:add", 1, 2) != 3:
        print("error: operator:add(1, 2) did not answer 3", flush=True)
        return 1
    for _ in range(2000):  # warm-up: the worker's first calls import and allocate
        client.call("operator:add", 1, 2)
    serve(lambda: client.call("operator:add", 1, 2),
          lambda size: client.call("builtins:bytes", size))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
