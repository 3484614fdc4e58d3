"""Round trips from real Jython 2.7 (the python3 library) through each transport, in one run
with the CPython client and with bare echo floors (no sidecar logic, no worker), so the figures
can be compared on a noisy machine.

    .venv/bin/python benchmarks/jython_bench.py [N] [--short]

Figures: median and p99 in microseconds, after warm-up (Jython's JIT needs thousands of calls).
Goal (issue 3): python3.call over Py4J, median <= 150 us.
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

GOAL_US = 150.0
TOKEN = "bench-token"


def echo_server() -> None:
    """Child process: a Py4J front (in a loop, as in the sidecar) and a ZeroMQ ROUTER that echo
    their payload."""
    import threading

    import zmq

    from bridge.py4j_server import Py4JFront
    from sidecar.loop import Loop

    loop = Loop()
    front = Py4JFront(loop, lambda payload, reply: reply(payload), python_port=0,
                      auth_token=TOKEN)
    front.start()
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
    print(json.dumps({"py4j": front.port, "zmq": f"tcp://127.0.0.1:{port}"}), flush=True)

    def until_stdin_closes() -> None:
        sys.stdin.read()  # until the parent closes our stdin
        loop.stop()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    loop.run()
    front.stop()


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


def run(n: int) -> dict[str, tuple[float, float]]:
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "min-size": 2, "max-size": 2},
                              "scaling": {"enabled": False}}, py4j_port=0)
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
                   BENCH_TOKEN=TOKEN)
        cmd = ["java", "-Xss2m", "-cp", jvm.classpath(), "-Dpython.cachedir.skip=true",
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
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        echo_server()
        return 0
    n = 2000 if args.short else args.n
    figures = run(n)
    print(f"\nround trips, {n} timed calls each after warm-up (us):")
    print(f"  {'figure':32} {'median':>8} {'p99':>9}")
    for name, (median, p99) in figures.items():
        print(f"  {name:32} {median:8.1f} {p99:9.1f}")
    py4j = figures.get("python3_call_py4j")
    if py4j:
        verdict = "met" if py4j[0] <= GOAL_US else "NOT met"
        print(f"goal python3.call over Py4J median <= {GOAL_US:g} us: {verdict} "
              f"({py4j[0]:.1f} us; CPython client on the same sidecar: "
              f"{figures['cpython_client_call'][0]:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
