"""Where the wall time and the throughput go: ours and the peers, every process's CPU per call
beside the wall time (one thread) and the calls/s (8 threads), in one run.

    .venv/bin/python benchmarks/cost_split.py [--calls 3000] [--seconds 1] [--rounds 5]
                                              [--reply-mib 32] [--reply-calls 5] [--json OUT]

The subjects, each a caller process driven by the same command loop
(``benchmarks/client_driver.py``, ``benchmarks/peer_driver.py``): our CPython client over
ZeroMQ and over the sidecar's Unix socket (the caller, the sidecar and its workers), and
``ProcessPoolExecutor`` and ``multiprocessing.Pool`` of the same size (the caller, with its
feeder and result threads, and its workers). Around every window the parent reads each
process's CPU (``/proc/<pid>/task/*/schedstat``, every thread) and the machine's busy time
(``/proc/stat``), and divides by the calls of the window. Three parts, rounds alternating, the
order rotated, medians:

- **serial** (1 worker, one calling thread): wall per call, each process's CPU per call, and
  the wall no process of the call was running (``wall - sum of CPU``: wake-ups and waiting);
- **throughput** (2 and 4 workers, 8 calling threads): calls/s, CPU per call per process, the
  cores the subject kept busy, and its ceiling on this machine (cores / CPU per call);
- **reply** (1 worker): a ``bytes`` reply of ``--reply-mib`` MiB, the same split, with one more
  sidecar whose processes keep ``--reply-kept`` MiB of free heap (``PY3SIDECAR_MALLOC_KEEP_MIB``;
  96 was ``sidecar/platform/memtune.py``'s setting before).

No pinning: these are the issue's unpinned wall and throughput goals, explained by CPU.

Owns: these figures. Must not touch: the library (it only calls it through its clients).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.before_tree import Driver, PeerCaller, TreeClient  # noqa: E402
from benchmarks.cpu_per_call import children_cpu_ns  # noqa: E402
from benchmarks.measure import write_rows  # noqa: E402
from sidecar.testing import PROJECT_ROOT, SidecarProcess  # noqa: E402

MIB = 1 << 20
CORES = os.cpu_count() or 1
PARTS = ("caller", "sidecar", "workers")
RESULTS = Path(__file__).resolve().parent / "results" / "cost_split.json"


def machine_busy_ns() -> int:
    """Every CPU's non-idle time since boot (``/proc/stat``), ns."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Subject:
    """One system under test: its caller process, its sidecar (or none), its workers' parent."""

    def __init__(self, name: str, driver: Driver, sidecar_pid: int | None) -> None:
        self.name, self.driver, self.sidecar_pid = name, driver, sidecar_pid
        self.workers_parent = sidecar_pid or driver.pid

    def cpu(self) -> dict[str, Any]:
        threads = thread_cpu_ns(self.sidecar_pid) if self.sidecar_pid else {}
        return {"caller": self.driver.cpu_ns(), "sidecar": sum(threads.values()),
                "threads": threads, "workers": children_cpu_ns(self.workers_parent)}


def thread_cpu_ns(pid: int) -> dict[str, int]:
    """Each live thread of ``pid``: its CPU (``schedstat``), ns."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                out[tid] = int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended between the listing and the read
    return out


def window(subject: Subject, action: Callable[[Driver], tuple[int, float]]) -> dict[str, float]:
    """Run ``action`` (-> calls, seconds) once; per-call CPU of each part, in us."""
    before, busy0, started = subject.cpu(), machine_busy_ns(), time.perf_counter()
    calls, seconds = action(subject.driver)
    wall = time.perf_counter() - started
    after, busy1 = subject.cpu(), machine_busy_ns()
    row = {part: (after[part] - before[part]) / calls / 1e3 for part in PARTS}
    row["cpu"] = sum(row[part] for part in PARTS)
    # The sidecar's busiest thread (its loop): how much of one core it was busy.
    loop = max((after["threads"][t] - before["threads"].get(t, 0) for t in after["threads"]),
               default=0)
    row["loop"] = loop / calls / 1e3
    row["wall"] = seconds / calls * 1e6
    row["rate"] = calls / seconds
    row["cores_busy"] = sum(after[p] - before[p] for p in PARTS) / 1e9 / wall
    row["machine_busy"] = (busy1 - busy0) / 1e9 / wall
    row["loop_busy"] = loop / 1e9 / wall
    return row


def median_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


def measure(subjects: list[Subject], action: Callable[[Driver], tuple[int, float]],
            rounds: int) -> dict[str, dict[str, float]]:
    got: dict[str, list[dict[str, float]]] = {s.name: [] for s in subjects}
    for turn in range(rounds):
        shift = turn % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            got[subject.name].append(window(subject, action))
    return {name: median_rows(rows) for name, rows in got.items()}


class KeptSidecar(SidecarProcess):
    """A sidecar whose processes keep ``keep_mib`` MiB of free heap (``memtune``'s knob)."""

    def __init__(self, keep_mib: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_mib = keep_mib

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "PY3SIDECAR_MALLOC_KEEP_MIB": str(self.keep_mib)}


class Subjects:
    """Ours over ZeroMQ and over the Unix socket, one sidecar; PPE and mp.Pool; all closed.
    ``also_kept``: one more sidecar, over its Unix socket, keeping that many MiB of free heap."""

    def __init__(self, workers: int, overrides: dict[str, Any] | None = None,
                 peers: tuple[str, ...] = ("ppe", "mp_pool"), also_kept: int = 0) -> None:
        config = {"pool": {"initial-size": workers, "min-size": workers, "max-size": workers,
                           "spares": 0}, "scaling": {"enabled": False}, **(overrides or {})}
        self.sidecar = SidecarProcess(config, ready_workers=workers)
        self.kept = KeptSidecar(also_kept, config, ready_workers=workers) if also_kept else None
        self.drivers: list[Driver] = []
        self.list: list[Subject] = []
        try:
            self.sidecar.start()
            if self.kept is not None:
                self.kept.start()
                driver = TreeClient(PROJECT_ROOT, self.kept, workers, own_tree=True,
                                    endpoint=self.kept.connection["unix"]["endpoint"],
                                    timeout=300)
                self.drivers.append(driver)
                self.list.append(Subject(f"ours, Unix, {also_kept} MiB kept", driver,
                                         self.kept.proc.pid))
            pid = self.sidecar.proc.pid
            unix = (self.sidecar.connection.get("unix") or {}).get("endpoint")
            for name, endpoint in (("ours, ZeroMQ", None), ("ours, Unix socket", unix)):
                driver = TreeClient(PROJECT_ROOT, self.sidecar, workers, own_tree=True,
                                    endpoint=endpoint, timeout=300)
                self.drivers.append(driver)
                self.list.append(Subject(name, driver, pid))
            for kind in peers:
                driver = PeerCaller(kind, workers, timeout=300)
                self.drivers.append(driver)
                self.list.append(Subject(f"{kind}({workers})", driver, None))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        self.sidecar.stop()
        if self.kept is not None:
            self.kept.stop()


def serial(calls: int) -> Callable[[Driver], tuple[int, float]]:
    def action(driver: Driver) -> tuple[int, float]:
        started = time.perf_counter()
        driver.calls(calls)
        return calls, time.perf_counter() - started
    return action


def threaded(threads: int, seconds: float) -> Callable[[Driver], tuple[int, float]]:
    def action(driver: Driver) -> tuple[int, float]:
        _, n, elapsed = driver.window(threads, seconds)
        return n, elapsed
    return action


def replies(calls: int, size: int) -> Callable[[Driver], tuple[int, float]]:
    def action(driver: Driver) -> tuple[int, float]:
        started = time.perf_counter()
        driver.replies(calls, size)
        return calls, time.perf_counter() - started
    return action


def print_part(title: str, got: dict[str, dict[str, float]], rate: bool = False) -> None:
    print(f"\n{title}")
    head = "calls/s" if rate else "wall us"
    print(f"  {'subject':20s} {head:>9} {'caller':>8} {'sidecar':>8} {'(loop)':>7} "
          f"{'workers':>8} {'CPU us':>8} {'wall-CPU':>9} {'cores':>6} {'loop':>5} "
          f"{'machine':>8} {'ceiling/s':>10}")
    for name, r in got.items():
        first = f"{r['rate']:9.0f}" if rate else f"{r['wall']:9.1f}"
        print(f"  {name:20s} {first} {r['caller']:8.1f} {r['sidecar']:8.1f} {r['loop']:7.1f} "
              f"{r['workers']:8.1f} {r['cpu']:8.1f} {r['wall'] - r['cpu']:9.1f} "
              f"{r['cores_busy']:6.2f} {r['loop_busy']:5.2f} {r['machine_busy']:8.2f} "
              f"{CORES / r['cpu'] * 1e6:10.0f}", flush=True)


GOALS = {"serial": "<= 0.8x", "throughput_2w": ">= 1.5x", "reply_32mib": "<= 1.0x"}


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each section's subjects against that section's ProcessPoolExecutor, the split as extra
    members (the rows of ``benchmarks/results/README.md``)."""
    rows = []
    for section, got in result.items():
        if not isinstance(got, dict):
            continue
        ppe = next(name for name in got if name.startswith("ppe("))
        key, unit = ("rate", "calls/s") if section.startswith("throughput") else ("wall", "us")
        for name, split in got.items():
            if name == ppe:
                continue
            rows.append({"figure": f"{section}: {name} / {ppe}", "ours": split[key],
                         "peer": got[ppe][key], "ratio": split[key] / got[ppe][key],
                         "unit": unit, "goal": GOALS.get(section, "") if name.startswith("ours")
                         and "kept" not in name
                         else "", "peer_name": f"ProcessPoolExecutor, {ppe}",
                         "split": split, "peer_split": got[ppe]})
    return rows


def run(calls: int, seconds: float, rounds: int, reply_mib: int,
        reply_calls: int, reply_kept: int = 96) -> dict[str, Any]:
    result: dict[str, Any] = {"cores": CORES, "load": os.getloadavg()[0]}
    subjects = Subjects(1)
    try:
        for s in subjects.list:  # warm the peers' and ours' paths alike
            s.driver.calls(500)
        result["serial"] = measure(subjects.list, serial(calls), rounds)
    finally:
        subjects.close()
    print_part(f"serial, 1 worker, one calling thread, {calls} calls x {rounds} rounds "
               "(us per call; 'wall-CPU': no process of the call on a CPU):", result["serial"])
    for workers in (2, 4):
        subjects = Subjects(workers)
        try:
            got = measure(subjects.list, threaded(8, seconds), rounds)
        finally:
            subjects.close()
        result[f"throughput_{workers}w"] = got
        print_part(f"throughput, {workers} workers, 8 calling threads, {seconds:g} s x {rounds} "
                   f"(CPU us per call; cores: the subject's CPU / wall; machine: every process; "
                   f"ceiling: {CORES} cores / CPU per call):", got, rate=True)
    if reply_mib:
        size = reply_mib * MIB
        subjects = Subjects(1, {"bridge": {"max-message-size": size + 16 * MIB}}, peers=("ppe",),
                            also_kept=reply_kept)
        try:
            for s in subjects.list:
                s.driver.replies(1, size)
            got = measure(subjects.list, replies(reply_calls, size), rounds)
        finally:
            subjects.close()
        result[f"reply_{reply_mib}mib"] = got
        print_part(f"a {reply_mib} MiB bytes reply, 1 worker, {reply_calls} calls x {rounds} "
                   "(us per call):", got)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="serial calls per window")
    parser.add_argument("--seconds", type=float, default=1.0, help="throughput window")
    parser.add_argument("--rounds", type=int, default=5, help="windows per subject")
    parser.add_argument("--reply-mib", type=int, default=32, help="reply size (0: skip)")
    parser.add_argument("--reply-calls", type=int, default=5, help="replies per window")
    parser.add_argument("--reply-kept", type=int, default=96,
                        help="also a sidecar keeping this many MiB of free heap, for the reply "
                             "(96: memtune's before; 0: none)")
    parser.add_argument("--json", default=str(RESULTS), help="where the figures go")
    args = parser.parse_args(argv)
    result = run(args.calls, args.seconds, args.rounds, args.reply_mib, args.reply_calls,
                 args.reply_kept)
    return write_rows(rows_of(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
