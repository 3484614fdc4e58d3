"""Where a trivial call's microseconds go, in the sidecar and in the worker (docs/performance.md,
"The sidecar hop").

    .venv/bin/python benchmarks/profile_hop.py [SECONDS] [--op execute|call] [--affinity CPUS]

Starts a sidecar with one worker, drives ``execute("1+1")`` (or ``call("operator:add", 1, 2)``)
from one client thread for SECONDS while py-spy (the test extra) samples the sidecar and the
worker without stopping them (``--nonblocking``, idle samples left out), then prints, per
process, the microseconds per call spent in each room (by source file) and the busiest
functions. A sample is 1/rate seconds of one thread on a CPU, so the figures are CPU time per
call, not latency: the rest of the round trip is the kernel (pipes, ZeroMQ's I/O thread,
wake-ups) and the client.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sidecar.testing import SidecarProcess, wait_until  # noqa: E402

RATE = 1000
SPY_MODE = os.environ.get("PY3SIDECAR_SPY_MODE", "--nonblocking").split()
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def parse(raw: str) -> tuple[collections.Counter, collections.Counter, int]:
    """(self samples by function, inclusive samples by file, total samples)."""
    functions: collections.Counter = collections.Counter()
    rooms: collections.Counter = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [FRAME.match(f) for f in stack.split(";")]
        frames = [m for m in frames if m]
        if not frames:
            continue
        leaf = frames[-1]
        functions[f"{leaf['func']} ({Path(leaf['file']).name})"] += n
        # the innermost of our own files owns the sample (C calls count to their caller)
        ours = [m for m in frames if "/sidecar/" in m["file"] or "/bridge/" in m["file"]]
        room = Path(ours[-1]["file"]).name if ours else Path(leaf["file"]).name
        rooms[room] += n
    return functions, rooms, total


def report(name: str, raw: str, calls: int, top: int = 12) -> None:
    functions, rooms, total = parse(raw)
    per_call = 1e6 / RATE / max(calls, 1)
    print(f"\n{name}: {total * per_call:.1f} us of CPU per call ({total} samples)")
    for room, n in rooms.most_common(top):
        print(f"  {n * per_call:7.1f} us  {room}")
    print("  busiest functions (self time):")
    for func, n in functions.most_common(top):
        print(f"  {n * per_call:7.1f} us  {func}")


def schedstat(pid: int) -> dict[str, list[int]]:
    """Per thread (by name): [ns on a CPU, ns waiting in the run queue, times scheduled in]."""
    threads: dict[str, list[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            numbers = [int(x) for x in Path(f"/proc/{pid}/task/{tid}/schedstat").read_text()
                       .split()]
        except OSError:
            continue
        total = threads.setdefault(name, [0, 0, 0])
        for i, value in enumerate(numbers[:3]):
            total[i] += value
    return threads


def report_scheduling(name: str, before: dict, after: dict, calls: int) -> None:
    print(f"\n{name}, per call: CPU us / run-queue wait us / times scheduled in")
    for thread, (cpu, wait, slices) in sorted(after.items()):
        cpu0, wait0, slices0 = before.get(thread, [0, 0, 0])
        if slices - slices0 < calls // 20:
            continue  # threads not on the call's path
        cpu_us, wait_us = (cpu - cpu0) / calls / 1e3, (wait - wait0) / calls / 1e3
        print(f"  {thread:18s} {cpu_us:7.1f} {wait_us:7.1f} {(slices - slices0) / calls:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", nargs="?", type=float, default=10.0)
    parser.add_argument("--op", choices=("execute", "call"), default="execute")
    parser.add_argument("--affinity", default="", help="python3.pool.cpu-affinity, e.g. 0")
    parser.add_argument("--no-spy", action="store_true", help="scheduling figures only")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    config = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
              "scaling": {"enabled": False}}
    if args.affinity:
        config["pool"]["cpu-affinity"] = args.affinity
    with SidecarProcess(config, workdir=tempfile.mkdtemp(prefix="py3sidecar-profile-")) as proc:
        client = proc.client(timeout=10)
        worker = wait_until(lambda: next((w["pid"] for w in proc.pool()["workers"]
                                          if w["state"] == "idle"), None), 10)
        run = ((lambda: client.execute("1+1")) if args.op == "execute"
               else (lambda: client.call("operator:add", 1, 2)))
        for _ in range(2000):
            run()
        out = Path(tempfile.mkdtemp(prefix="py3sidecar-spy-"))
        targets = [] if args.no_spy else [("sidecar", proc.proc.pid), ("worker", worker)]
        spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(RATE),
                                   *SPY_MODE, "--format", "raw", "--duration",
                                   str(int(args.seconds)), "--output", str(out / name)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for name, pid in targets]
        time.sleep(1.0)  # py-spy attached
        calls, stop = 0, threading.Event()
        pids = {"client (this process)": os.getpid(), "sidecar": proc.proc.pid, "worker": worker}
        before = {name: schedstat(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        deadline = started + args.seconds - 2
        while time.perf_counter() < deadline:
            run()
            calls += 1
        elapsed = time.perf_counter() - started
        after = {name: schedstat(pid) for name, pid in pids.items()}
        stop.set()
        for spy_proc in spies:
            spy_proc.wait(args.seconds + 30)
        print(f"{args.op}: {calls} calls in {elapsed:.1f} s, {elapsed / calls * 1e6:.0f} us "
              f"per call (one client thread, sampled at {RATE} Hz; pid {os.getpid()})")
        for name in pids:
            report_scheduling(name, before[name], after[name], calls)
        print("\npy-spy (a blocked thread woken but not yet on a CPU counts as busy: on a "
              "loaded machine the waits show as poll/read)")
        for name in ("sidecar", "worker"):
            path = out / name
            report(name, path.read_text() if path.exists() else "", calls)


if __name__ == "__main__":
    main()
