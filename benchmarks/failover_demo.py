"""Kill the primary sidecar mid-load and count the answers: every call must get its value.

    .venv/bin/python -m benchmarks.failover_demo [--seconds 3] [--threads 4]

Starts two real sidecars sharing a token, runs client threads calling through
``Client([first, second])``, SIGKILLs the first sidecar half-way, and prints how many calls
were answered with their value, by which sidecar, and the slowest call around the kill.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bridge.breaker import BreakerConfig
from bridge.client import Client
from sidecar.testing import SidecarProcess

TOKEN = "failover-demo-token"


def sidecar(workdir: Path) -> SidecarProcess:
    proc = SidecarProcess({"pool": {"initial-size": 2}}, workdir=str(workdir))
    proc.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (proc.runtime_dir / "token").write_text(TOKEN + "\n")
    os.chmod(proc.runtime_dir / "token", 0o600)
    return proc


def run(seconds: float = 3.0, threads: int = 4) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="py3sidecar-failover-"))
    first, second = sidecar(root / "first").start(), sidecar(root / "second").start()
    client = Client([first.endpoint, second.endpoint], TOKEN, timeout=10, connect_timeout=0.5,
                    breaker=BreakerConfig(failure_threshold=1, failure_rate_threshold=1.0,
                                          window_size=1, minimum_calls=1, open_timeout=2.0,
                                          half_open_max_probes=1, success_threshold=1))
    answered: list[tuple[str, float, float]] = []  # endpoint, started, seconds
    failed: list[str] = []
    stop = threading.Event()

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                result = client.execute("import time; time.sleep(0.005); x * 2", {"x": i})
                assert result.value == i * 2
                answered.append((result.endpoint, started, time.monotonic() - started))
            except Exception as exc:  # counted, never hidden
                failed.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=load, args=(n,)) for n in range(threads)]
    try:
        for w in workers:
            w.start()
        time.sleep(seconds / 2)  # the demo's own pacing, not test synchronisation
        killed_at = time.monotonic()
        first.proc.kill()
        time.sleep(seconds / 2)
        stop.set()
        for w in workers:
            w.join(30)
    finally:
        stop.set()
        client.close()
        second.stop()
        first.stop()
    around = [s for _, started, s in answered if abs(started - killed_at) < 0.5]
    return {
        "calls": len(answered) + len(failed),
        "answered": len(answered),
        "failed": len(failed),
        "failures": failed[:5],
        "by_first": sum(1 for e, _, _ in answered if e == first.endpoint),
        "by_second": sum(1 for e, _, _ in answered if e == second.endpoint),
        "median_ms": statistics.median(s for _, _, s in answered) * 1000 if answered else None,
        "slowest_around_kill_ms": max(around) * 1000 if around else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    figures = run(args.seconds, args.threads)
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    raise SystemExit(0 if figures["failed"] == 0 else 1)


if __name__ == "__main__":
    main()
