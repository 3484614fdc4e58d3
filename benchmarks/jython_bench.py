"""Round trips from real Jython 2.7 (the python3 library) through each transport, in one run
with the CPython client and with bare echo floors (no sidecar logic, no worker), so the figures
can be compared on a noisy machine.

    .venv/bin/python benchmarks/jython_bench.py [N] [--short]

Figures: median and p99 in microseconds, after warm-up (Jython's JIT needs thousands of calls),
then same-run ratios against the bare echo floors; the Java helper jar on and off
(`_jython`: the pure-Jython codec), a canned-reply py4j front (the library's own cost, no
sidecar); Datasets of --dataset-rows x 5 columns sent to pandas, `describe()` back, returned
unchanged, against a bare py4j echo of the same request bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.testing import SidecarProcess, wait_until  # noqa: E402
from tests.jython import jvm  # noqa: E402

TOKEN = "bench-token"


def echo_server() -> None:
    """Child process: a Py4J front (in a loop, as in the sidecar) and a ZeroMQ ROUTER that echo
    their payload."""
    import threading

    import zmq

    from bridge import codec
    from bridge.py4j_server import Py4JFront
    from sidecar.loop import Loop

    loop = Loop()
    front = Py4JFront(loop, lambda payload, reply: reply(payload), python_port=0,
                      auth_token=TOKEN)
    front.start()

    def canned(payload: bytes, reply) -> None:
        # What a sidecar answers to python3.call('operator:add', [1, 2]) or python3.ping(),
        # with no worker behind it: the Jython library's own cost over the py4j floor.
        rid = codec.unpack_raw(payload).get("id")
        reply(codec.pack_raw({"id": rid, "ok": True, "value": 3, "stdout": "", "stderr": "",
                              "worker": 1, "ms": 0.01, "via": "primary"}))

    canned_front = Py4JFront(loop, canned, python_port=0, auth_token=TOKEN)
    canned_front.start()
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve() -> None:
        while True:
            try:
                frames = router.recv_multipart()
            except zmq.ZMQError:
                return
            router.send_multipart(frames)

    threading.Thread(target=serve, daemon=True).start()
    print(json.dumps({"py4j": front.port, "canned": canned_front.port,
                      "zmq": f"tcp://127.0.0.1:{port}"}), flush=True)

    def until_stdin_closes() -> None:
        sys.stdin.read()  # until the parent closes our stdin
        loop.stop()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    loop.run()
    front.stop()
    canned_front.stop()


def percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    n = len(samples)
    return samples[n // 2] / 1000.0, samples[n * 99 // 100] / 1000.0


def cpython_client(sidecar: SidecarProcess, n: int) -> dict[str, tuple[float, float]]:
    client = sidecar.client(timeout=10)
    out = {}
    for name, fn in (("cpython_client_call", lambda: client.call("operator:add", 1, 2)),
                     ("cpython_client_ping", client.ping)):
        for _ in range(max(2000, n // 2)):
            fn()
        samples = []
        for _ in range(n):
            t = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t)
        out[name] = percentiles(samples)
    return out


def run(n: int, datasets: int) -> dict[str, tuple[float, float]]:
    # pandas preloaded, as a deployment that passes Datasets to pandas would: numpy's OpenBLAS
    # threads started by a call would otherwise recycle the worker after it.
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "min-size": 2, "max-size": 2},
                              "scaling": {"enabled": False},
                              "worker": {"preload": ["pandas"] if datasets else []}},
                             py4j_port=0)
    echo = subprocess.Popen([sys.executable, __file__, "--echo-server"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    figures: dict[str, tuple[float, float]] = {}
    try:
        ports = json.loads(wait_until(echo.stdout.readline, 20, message="echo server"))
        sidecar.start()
        env = dict(os.environ, PY3_LIBRARY_DIR=str(jvm.LIBRARY), PY3_HARNESS_DIR=str(jvm.JY),
                   PY3_SETTINGS=json.dumps({"CONNECTION_FILE": str(sidecar.connection_file)}),
                   BENCH_ECHO_PY4J_PORT=str(ports["py4j"]), BENCH_ECHO_ZMQ=ports["zmq"],
                   BENCH_CANNED_PY4J_PORT=str(ports["canned"]), BENCH_TOKEN=TOKEN,
                   BENCH_DATASET_ROWS=str(datasets))
        cmd = ["java", "-Xss2m", "-Xmx2g", "-cp", jvm.classpath(), "-Dpython.cachedir.skip=true",
               "org.python.util.jython", str(ROOT / "benchmarks" / "jy" / "bench_calls.py"),
               str(n)]
        proc = subprocess.run(cmd, env=env, cwd=str(jvm.JY), capture_output=True, text=True,
                              timeout=600)
        for line in proc.stdout.splitlines():
            if line.startswith("FIG "):
                _, name, median, p99 = line.split()
                figures[name] = (float(median), float(p99))
        if "DONE" not in proc.stdout:
            raise RuntimeError(f"the Jython benchmark failed:\n{proc.stdout[-3000:]}\n"
                               f"{proc.stderr[-3000:]}")
        figures.update(cpython_client(sidecar, n))
    finally:
        sidecar.stop()
        echo.stdin.close()
        echo.wait(10)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=20000, help="timed calls per figure")
    parser.add_argument("--short", action="store_true", help="2000 calls per figure")
    parser.add_argument("--dataset-rows", type=int, default=100_000,
                        help="rows of the 5-column Dataset cases (0: skip them)")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        echo_server()
        return 0
    n = 2000 if args.short else args.n
    figures = run(n, args.dataset_rows)
    print_tables(n, figures, args.dataset_rows)
    return 0


# (figure, the same-run floor it is divided by, goal ratio or None)
RATIOS = [
    ("python3_call_py4j", "bare_py4j_echo", 2.0),
    ("python3_call_py4j@p99", "bare_py4j_echo@p99", 3.0),
    ("python3_ping_py4j", "bare_py4j_echo", 1.3),
    ("python3_call_py4j_jython", "bare_py4j_echo", None),
    ("python3_ping_py4j_jython", "bare_py4j_echo", None),
    ("canned_call_py4j", "bare_py4j_echo", None),
    ("canned_call_py4j_jython", "bare_py4j_echo", None),
    ("canned_ping_py4j", "bare_py4j_echo", None),
    ("cpython_client_call", "bare_py4j_echo", None),
    ("python3_call_zmq", "bare_jeromq_echo", None),
]
DATASET_GOALS_MS = {"dataset_send": 100.0, "dataset_describe": 200.0, "dataset_unchanged": 250.0}


def _value(figures: dict[str, tuple[float, float]], name: str) -> float | None:
    base, _, which = name.partition("@")
    pair = figures.get(base)
    return None if pair is None else pair[1 if which == "p99" else 0]


def _floor_of(figures: dict[str, tuple[float, float]], name: str, floor: str) -> str:
    """The echo sampled call by call alongside ``name`` (``name~echo``) when there is one."""
    base, at, which = name.partition("@")
    paired = f"{base}~echo"
    return paired + at + which if paired in figures else floor


def print_tables(n: int, figures: dict[str, tuple[float, float]], rows: int) -> None:
    small = {k: v for k, v in figures.items() if not k.startswith("dataset")}
    print(f"\nround trips, {n} timed calls each after warm-up (us):")
    print(f"  {'figure':34} {'median':>8} {'p99':>9}")
    for name, (median, p99) in small.items():
        print(f"  {name:34} {median:8.1f} {p99:9.1f}")
    print("\nsame-run ratios (\"_jython\": the helper jar turned off; \"canned\": a py4j front "
          "answering at once, no sidecar; \"~echo\": the echo sampled call by call alongside):")
    for name, floor, goal in RATIOS:
        floor = _floor_of(figures, name, floor)
        top, bottom = _value(figures, name), _value(figures, floor)
        if top is None or not bottom:
            continue
        met = "met" if goal is not None and top / bottom <= goal else "NOT met"
        verdict = "" if goal is None else f" goal <= {goal:.1f}x: {met}"
        print(f"  {name + ' / ' + floor:58} {top / bottom:6.2f}x{verdict}")
    big = {k: v for k, v in figures.items() if k.startswith("dataset")}
    if big:
        print(f"\nDatasets of {rows:,} rows x 5 columns (int, double, double, str, bool), "
              "median ms (p99 = the slowest round):")
        floor = figures.get("dataset_echo_py4j", (None,))[0]
        for name, (median, worst) in big.items():
            goal = DATASET_GOALS_MS.get(name.removesuffix("_jython"))
            met = "met" if goal is not None and median <= goal else "NOT met"
            verdict = "" if goal is None or name.endswith("_jython") else (
                f" goal <= {goal:g} ms: {met}")
            shown = floor and name not in ("dataset_echo_py4j", "dataset_request_mib")
            ratio = f" {median / floor:5.2f}x echo" if shown else ""
            print(f"  {name:30} {median:9.1f} {worst:9.1f}{ratio}{verdict}")


if __name__ == "__main__":
    sys.exit(main())
