"""CPU per trivial call in every process, beside the same-run floors of one bare hop.

    .venv/bin/python benchmarks/cpu_per_call.py [--calls N] [--rounds R] [--no-jython]
                                                [--jython-transports py4j,zmq,unix]
                                                [--json OUT] [--write-baseline] [--before TREE]

A trivial call is ``call("operator:add", 1, 2)``. For each transport the script counts the CPU
time (every thread's ``sum_exec_runtime`` from ``/proc/<pid>/task/*/schedstat``: user + system,
in nanoseconds, so a few thousand calls are enough) that N calls cost:

- the sidecar process (its loop thread, libzmq's I/O thread, everything),
- the worker(s) (every child of the sidecar: the template is idle),
- the CPython client process (the calling thread and its libzmq I/O thread),
- the Jython calling thread (``ThreadMXBean.getCurrentThreadCpuTime()``, over Py4J, ZeroMQ
  and the Unix socket: TRANSPORT py4j, zmq, unix), and the whole JVM,

and divides each by the floors measured in the same run:

- ``pipe_echo_side``: one side of a CPython pipe + msgpack echo (write a frame, the other
  process unpacks, packs and writes it back); the figure is the mean of the two sides' CPU per
  round trip. A sidecar, a worker and a client each do at least what one side does.
- ``py4j_echo_thread``: the calling Jython thread of a bare Py4J echo (a Py4J front that
  answers its payload at once, no sidecar logic).

Every round also carries the reason figures of ``benchmarks/relay_floor.py``: the CPU per call
of a bare Python relay process (ZeroMQ ROUTER, and a Unix socket) in front of a pipe echo, the
least a sidecar of this architecture can spend. ``--before TREE`` adds, in the same rounds, a
sidecar, worker and client from TREE beside this tree's (``benchmarks/cpu_before_after.py``).

Rounds interleave the floor and the measured path; the multiple reported is the median over
rounds (``--rounds``), so a burst of load from the machine's other users falls on both alike.
``benchmarks/test_cpu_guard.py`` runs this with a short count and checks each multiple against
``benchmarks/baseline.json`` (``make bench-baseline`` rewrites it with ``--write-baseline``).

Owns: these figures. Must not touch: the library (it only calls it through its clients).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the checkout's root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack  # noqa: E402
import psutil  # noqa: E402

from benchmarks import cpu_before_after, jython_before  # noqa: E402
from benchmarks.relay_floor import Relays  # noqa: E402
from sidecar.testing import PROJECT_ROOT, SidecarProcess, wait_until  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "baseline.json"
TOKEN = "cpu-bench-token"
REQUEST = {"v": 1, "id": 1, "op": "call", "token": "x" * 43, "timeout": 30.0,
           "target": "operator:add", "args": [1, 2]}
SIDECAR_CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
                  "scaling": {"enabled": False}}
# The multiples the guard checks (process -> the floor it is divided by).
GUARDED = {"sidecar": "pipe_echo_side", "worker": "pipe_echo_side",
           "client": "pipe_echo_side", "jython_thread": "py4j_echo_thread",
           "sidecar_unix": "pipe_echo_side", "client_unix": "pipe_echo_side"}
# The Jython library's transports: (TRANSPORT, label, suffix of its multiples' names).
JYTHON = (("py4j", "Py4J", ""), ("zmq", "ZeroMQ", "_zmq"), ("unix", "Unix socket", "_unix"))


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of ``pid`` (user + system, ns)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended between the listing and the read
    return total


def children_cpu_ns(pid: int) -> int:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    return sum(cpu_ns(kid.pid) for kid in kids)


# ----------------------------------------------------------------------------- the pipe floor
ECHO_CHILD = r"""
import os, sys, msgpack
r, w = int(sys.argv[1]), int(sys.argv[2])
unpacker = msgpack.Unpacker(raw=False)
while True:
    data = os.read(r, 65536)
    if not data:
        break
    unpacker.feed(data)
    for message in unpacker:
        os.write(w, msgpack.packb(message))
"""


class PipeEcho:
    """A CPython child that echoes msgpack frames over a pair of pipes."""

    def __init__(self) -> None:
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-c", ECHO_CHILD, str(to_child_r),
                                      str(from_child_w)], pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self.unpacker = msgpack.Unpacker(raw=False)

    def round_trip(self) -> Any:
        os.write(self.to_child, msgpack.packb(REQUEST))
        while True:
            self.unpacker.feed(os.read(self.from_child, 65536))
            for message in self.unpacker:
                return message

    def measure(self, calls: int) -> float:
        """Mean CPU of one side per round trip (us)."""
        for _ in range(min(calls, 2000)):
            self.round_trip()
        child0, self0 = cpu_ns(self.proc.pid), time.thread_time_ns()
        for _ in range(calls):
            self.round_trip()
        child, mine = cpu_ns(self.proc.pid) - child0, time.thread_time_ns() - self0
        return (child + mine) / 2 / calls / 1000.0

    def close(self) -> None:
        os.close(self.to_child)
        self.proc.wait(10)
        os.close(self.from_child)


# ----------------------------------------------------------------------------- the sidecar
def measure_cpython(sidecar: SidecarProcess, client: Any, calls: int) -> dict[str, float]:
    """CPU per call of the sidecar, its workers and this process (the client), over ZeroMQ."""
    pid = sidecar.proc.pid
    me = os.getpid()
    side0, work0, client0 = cpu_ns(pid), children_cpu_ns(pid), cpu_ns(me)
    wall0 = time.perf_counter_ns()
    for _ in range(calls):
        client.call("operator:add", 1, 2)
    wall = time.perf_counter_ns() - wall0
    side, work, mine = cpu_ns(pid) - side0, children_cpu_ns(pid) - work0, cpu_ns(me) - client0
    return {"sidecar": side / calls / 1000.0, "worker": work / calls / 1000.0,
            "client": mine / calls / 1000.0, "client_wall": wall / calls / 1000.0}


# ----------------------------------------------------------------------------- Jython
def py4j_echo_server() -> None:
    """Child process: a Py4J front (in a loop, as in the sidecar) that echoes its payload."""
    from bridge.py4j_server import Py4JFront
    from sidecar.loop import Loop

    loop = Loop()
    front = Py4JFront(loop, lambda payload, reply: reply(payload), python_port=0,
                      auth_token=TOKEN)
    front.start()
    print(json.dumps({"py4j": front.port}), flush=True)

    def until_stdin_closes() -> None:
        sys.stdin.read()
        loop.stop()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    loop.run()
    front.stop()


class JythonRun:
    """The JVM running benchmarks/jy/bench_cpu.py; each figure is a BEGIN/GO ... END/OK
    exchange so this side reads the sidecar's and worker's CPU around exactly those calls."""

    def __init__(self, sidecar: SidecarProcess, echo_port: int, calls: int,
                 transports: tuple[str, ...], tree: tuple[str, str, str] | None = None) -> None:
        """``tree``: (library, harness, classpath) of another tree (default: this one's)."""
        from tests.jython import jvm

        library, harness, classpath = tree or (str(jvm.LIBRARY), str(jvm.JY), jvm.classpath())
        env = dict(os.environ, PY3_LIBRARY_DIR=library, PY3_HARNESS_DIR=harness,
                   PY3_SETTINGS=json.dumps({"CONNECTION_FILE": str(sidecar.connection_file)}),
                   BENCH_ECHO_PY4J_PORT=str(echo_port), BENCH_TOKEN=TOKEN,
                   BENCH_TRANSPORTS=",".join(transports))
        cmd = ["java", "-Xss2m", "-Xmx1g", "-cp", classpath, "-Dpython.cachedir.skip=true",
               "org.python.util.jython", str(PROJECT_ROOT / "benchmarks" / "jy" / "bench_cpu.py"),
               str(calls)]
        self.sidecar = sidecar
        self.proc = subprocess.Popen(cmd, env=env, cwd=harness, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def rounds(self, deadline_s: float = 600.0) -> list[dict[str, float]]:
        """Reads figures until DONE: a list of {name: us} per round."""
        return list(self.iter_rounds(deadline_s))

    def iter_rounds(self, deadline_s: float = 600.0) -> Iterator[dict[str, float]]:
        """Each round's {name: us} as it ends; between two, the JVM waits (its next BEGIN)."""
        current: dict[str, float] = {}
        pid = self.sidecar.proc.pid
        jvm_pid = self.proc.pid
        marks: dict[str, tuple[int, int, int]] = {}
        stop_at = time.monotonic() + deadline_s
        timer = threading.Timer(deadline_s, self.proc.kill)  # every wait has a deadline
        timer.start()
        try:
            for line in self.proc.stdout:
                self.lines.append(line)
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "BEGIN":
                    marks[parts[1]] = (cpu_ns(pid), children_cpu_ns(pid), cpu_ns(jvm_pid))
                    self.proc.stdin.write("GO\n")
                    self.proc.stdin.flush()
                elif parts[0] == "END":
                    name, calls = parts[1], int(parts[2])
                    side0, work0, jvm0 = marks.pop(name)
                    current[f"{name}_sidecar"] = (cpu_ns(pid) - side0) / calls / 1000.0
                    current[f"{name}_worker"] = (children_cpu_ns(pid) - work0) / calls / 1000.0
                    current[f"{name}_jvm"] = (cpu_ns(jvm_pid) - jvm0) / calls / 1000.0
                    current[f"{name}_thread"] = float(parts[3])
                    current[f"{name}_wall"] = float(parts[4])
                    self.proc.stdin.write("OK\n")
                    self.proc.stdin.flush()
                elif parts[0] == "SKIP":  # a TRANSPORT this tree's library cannot use
                    print(f"Jython: {line.strip()}")
                elif parts[0] == "ROUND":
                    yield current
                    current = {}
                elif parts[0] == "DONE":
                    break
                if time.monotonic() > stop_at:
                    break
        finally:
            timer.cancel()
        if not any(line.startswith("DONE") for line in self.lines):
            self.proc.kill()
            err = self.proc.stderr.read()[-3000:] if self.proc.stderr else ""
            raise RuntimeError("the Jython benchmark failed:\n" + "".join(self.lines[-30:])
                               + err)
        self.proc.stdin.close()
        self.proc.wait(30)


# ----------------------------------------------------------------------------- one run
def run(calls: int = 5000, rounds: int = 3, jython: bool = True,
        jython_transports: tuple[str, ...] = ("py4j", "zmq", "unix"), cpu: int | None = 0,
        before: str | None = None) -> dict[str, Any]:
    """Every figure of every round, and the medians (us per call).

    ``cpu``: every process of the run (this one, the echo child, the sidecar and its workers,
    the JVM) on that one CPU (None: anywhere). On one CPU a hop is a direct switch from one
    process to the other; across CPUs it also pays the wake-up of an idle core, which varies
    with the machine's load by 3x or more and would make the floor itself drift.
    """
    affinity = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        return run_pinned(calls, rounds, jython, jython_transports, cpu, before)
    finally:
        os.sched_setaffinity(0, affinity)


def run_pinned(calls: int, rounds: int, jython: bool, jython_transports: tuple[str, ...],
               cpu: int | None, before: str | None = None) -> dict[str, Any]:
    echo, relays = PipeEcho(), Relays(REQUEST)
    config = dict(SIDECAR_CONFIG)
    if cpu is not None:
        config["pool"] = {**config["pool"], "cpu-affinity": str(cpu)}
    sidecar = SidecarProcess(config, py4j_port=0)
    py4j_echo = pair = None
    per_round: list[dict[str, float]] = []
    try:
        sidecar.start()
        client = sidecar.client(timeout=10)
        unix = unix_client(sidecar)
        libzmq = sidecar.client(timeout=10, libzmq=True)  # the hand-written ZMTP link's peer
        for _ in range(2000):  # warm-up: the worker's first calls import and allocate
            client.call("operator:add", 1, 2)
            unix.call("operator:add", 1, 2)
            libzmq.call("operator:add", 1, 2)
        pair = cpu_before_after.open_before(before, config)
        for _ in range(rounds):
            per_round.append(measure_round(echo, relays, pair, sidecar, (client, unix, libzmq),
                                           calls))
        unix.close()
        libzmq.close()
        if jython:
            py4j_echo = subprocess.Popen([sys.executable, __file__, "--py4j-echo-server"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, cwd=str(PROJECT_ROOT),
                                         env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))
            port = json.loads(wait_until(py4j_echo.stdout.readline, 20,
                                         message="py4j echo server"))["py4j"]
            jy = jython_before.jython_rounds(JythonRun(sidecar, port, calls, jython_transports),
                                             pair, port, calls, jython_transports)
            for i, figures in enumerate(jy[:len(per_round)]):
                per_round[i].update(figures)
    finally:
        sidecar.stop()
        echo.close()
        relays.close()
        if pair is not None:
            pair.close()
        if py4j_echo is not None:
            py4j_echo.stdin.close()
            py4j_echo.wait(10)
    result = summarize(per_round)
    if pair is not None:
        result["before_tree"] = before
    return result


def unix_client(sidecar: SidecarProcess) -> Any:
    """The CPython client on the sidecar's Unix socket (python3.bridge.unix)."""
    from bridge.client import Client

    return Client(sidecar.connection["unix"]["endpoint"], sidecar.token, timeout=10)


def measure_round(echo: PipeEcho, relays: Relays, pair: Any, sidecar: SidecarProcess,
                  clients: tuple[Any, Any, Any], calls: int) -> dict[str, float]:
    """One round: the floor, our sidecar (over ZeroMQ, then its Unix socket), the relays, the
    before/after pair, the floor again."""
    figures = {"pipe_echo_side": echo.measure(calls)}
    figures.update(measure_cpython(sidecar, clients[0], calls))
    figures.update({f"{k}_unix": v for k, v in measure_cpython(sidecar, clients[1],
                                                                 calls).items()})
    figures.update({f"{k}_libzmq": v for k, v in measure_cpython(sidecar, clients[2],
                                                                   calls).items()})
    figures.update(relays.measure(calls))
    if pair is not None:
        figures.update(pair.measure(calls))
    figures["pipe_echo_side_after"] = echo.measure(calls)
    return figures


def summarize(per_round: list[dict[str, float]]) -> dict[str, Any]:
    names = sorted({k for r in per_round for k in r})
    medians = {n: statistics.median(r[n] for r in per_round if n in r) for n in names}
    multiples: dict[str, float] = {}
    for r in per_round:  # the floor of the same round, before and after, averaged
        r["pipe_echo_side"] = (r["pipe_echo_side"] + r.pop("pipe_echo_side_after")) / 2
    for process, floor in {"sidecar": "pipe_echo_side", "worker": "pipe_echo_side",
                           "client": "pipe_echo_side", "relay_zmq": "pipe_echo_side",
                           "relay_unix": "pipe_echo_side", "sidecar_unix": "pipe_echo_side",
                           "worker_unix": "pipe_echo_side",
                           "client_unix": "pipe_echo_side", "client_libzmq": "pipe_echo_side",
                           "sidecar_libzmq": "pipe_echo_side"}.items():
        multiples[process] = statistics.median(r[process] / r[floor] for r in per_round
                                               if process in r)
    ratios = cpu_before_after.summarize(per_round, multiples)
    for transport, _, suffix in JYTHON:
        key = f"jython_{transport}"
        rows = [r for r in per_round if f"{key}_thread" in r and "py4j_echo_thread" in r]
        if not rows:
            continue
        multiples["jython_thread" + suffix] = statistics.median(
            r[f"{key}_thread"] / r["py4j_echo_thread"] for r in rows)
        multiples["jython_wall" + suffix] = statistics.median(
            r[f"{key}_wall"] / r["py4j_echo_wall"] for r in rows)
        multiples["sidecar_via_jython" + suffix] = statistics.median(
            r[f"{key}_sidecar"] / r["pipe_echo_side"] for r in rows)
        multiples["worker_via_jython" + suffix] = statistics.median(
            r[f"{key}_worker"] / r["pipe_echo_side"] for r in rows)
    medians["pipe_echo_side"] = statistics.median(r["pipe_echo_side"] for r in per_round)
    medians.pop("pipe_echo_side_after", None)
    out = {"rounds": per_round, "median_us": medians, "multiples": multiples}
    if ratios:
        out["after_over_before"] = ratios
    return out


def print_table(result: dict[str, Any], calls: int) -> None:
    med, mult = result["median_us"], result["multiples"]
    rows = [
        ("sidecar process (CPython client, ZeroMQ)", "sidecar", "pipe_echo_side", "sidecar"),
        ("worker (CPython client)", "worker", "pipe_echo_side", "worker"),
        ("CPython client process", "client", "pipe_echo_side", "client"),
        ("sidecar process (CPython client, Unix socket)", "sidecar_unix", "pipe_echo_side",
         "sidecar_unix"),
        ("worker (CPython client, Unix socket)", "worker_unix", "pipe_echo_side",
         "worker_unix"),
        ("CPython client process (Unix socket)", "client_unix", "pipe_echo_side",
         "client_unix"),
        ("CPython client process (libzmq DEALER)", "client_libzmq", "pipe_echo_side",
         "client_libzmq"),
        ("sidecar process (libzmq DEALER client)", "sidecar_libzmq", "pipe_echo_side",
         "sidecar_libzmq"),
        ("floor: bare Python relay (ZeroMQ)", "relay_zmq", "pipe_echo_side", "relay_zmq"),
        ("floor: bare Python relay (Unix socket)", "relay_unix", "pipe_echo_side",
         "relay_unix"),
    ]
    for what, key, floor, mkey in (("Jython calling thread ({})", "thread", "py4j_echo_thread",
                                    "jython_thread"),
                                   ("sidecar process (Jython, {})", "sidecar", "pipe_echo_side",
                                    "sidecar_via_jython"),
                                   ("wall: Jython python3.call ({})", "wall", "py4j_echo_wall",
                                    "jython_wall")):
        if key == "wall":
            rows.append(("worker (Jython, Py4J)", "jython_py4j_worker", "pipe_echo_side",
                         "worker_via_jython"))
        rows += [(what.format(label), f"jython_{t}_{key}", floor, mkey + suffix)
                 for t, label, suffix in JYTHON]
    print(f"\nCPU per trivial call (call('operator:add', 1, 2)), {calls} calls per figure, "
          f"median of {len(result['rounds'])} rounds (us):")
    print(f"  {'figure':44} {'us':>8} {'floor':>18} {'floor us':>9} {'multiple':>9}")
    for label, key, floor, mkey in rows:
        if key not in med:
            continue
        print(f"  {label:44} {med[key]:8.1f} {floor:>18} {med.get(floor, float('nan')):9.1f} "
              f"{mult.get(mkey, med[key] / med[floor]):8.2f}x")
    if "jython_py4j_jvm" in med:
        print(f"  {'whole JVM per Jython call (Py4J)':44} {med['jython_py4j_jvm']:8.1f}")
    print(f"  {'wall: CPython client':44} {med['client_wall']:8.1f}")
    if "client_wall_unix" in med:
        print(f"  {'wall: CPython client (Unix socket)':44} {med['client_wall_unix']:8.1f}")
    cpu_before_after.print_table(result)


def check_against_baseline(result: dict[str, Any], baseline: dict[str, Any],
                           tolerance: float = 1.5) -> list[str]:
    """A message per guarded process whose multiple is above ``tolerance`` x its baseline."""
    failures = []
    for process, floor in GUARDED.items():
        base = baseline.get("multiples", {}).get(process)
        now = result["multiples"].get(process)
        if base is None or now is None:
            continue
        if now > tolerance * base:
            key = {"jython_thread": "jython_py4j_thread"}.get(process, process)
            failures.append(
                f"{process}: CPU per trivial call is {now:.2f}x the same-run floor "
                f"({result['median_us'].get(key, float('nan')):.1f} us / "
                f"{result['median_us'][floor]:.1f} us {floor}), above {tolerance}x its "
                f"baseline of {base:.2f}x (benchmarks/baseline.json; `make bench-baseline` "
                "refreshes it when the change is intended)")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-jython", action="store_true")
    parser.add_argument("--jython-transports", default="py4j,zmq,unix",
                        help="the Jython library's TRANSPORTs measured (comma-separated)")
    parser.add_argument("--cpu", default="0",
                        help="the one CPU every process runs on ('any': no pinning)")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--write-baseline", action="store_true",
                        help=f"write the multiples to {BASELINE.name}")
    parser.add_argument("--before", metavar="TREE",
                        help="also measure the sidecar, worker and client of TREE (e.g. "
                             "build/before, from `git archive 9f4ee9f`), same rounds")
    parser.add_argument("--py4j-echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.py4j_echo_server:
        py4j_echo_server()
        return 0
    result = run(args.calls, args.rounds, jython=not args.no_jython,
                 jython_transports=tuple(t for t in args.jython_transports.split(",") if t),
                 cpu=None if args.cpu == "any" else int(args.cpu), before=args.before)
    print_table(result, args.calls)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.write_baseline:
        BASELINE.write_text(json.dumps({
            "multiples": {k: round(v, 3) for k, v in result["multiples"].items()},
            "median_us": {k: round(v, 2) for k, v in result["median_us"].items()},
            "calls": args.calls, "rounds": args.rounds, "cpu": args.cpu,
            "command": "make bench-baseline",
            "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }, indent=2) + "\n")
        print(f"\nwrote {BASELINE}")
    if BASELINE.exists() and not args.write_baseline:
        for failure in check_against_baseline(result, json.loads(BASELINE.read_text())):
            print("REGRESSION " + failure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
