"""Covers: sidecar.service, sidecar.pool.local, sidecar.worker.main, bridge.client.

The guard the design card asks for ("pytest-benchmark guards the hot execution path"): each
process's CPU per trivial call, as a multiple of the same-run floor
(benchmarks/cpu_per_call.py), must stay within 1.5x of the committed baseline
(benchmarks/baseline.json, refreshed by ``make bench-baseline``). CPU multiples, not wall
times: they hold on a noisy machine, and a process is named only when two measurements in a
row put it above (one burst of load is not a regression; a regression shows every time). A
second case shows the guard bites: with a deliberate slowdown of the sidecar's dispatch
(benchmarks/slowdown/sitecustomize.py) large enough to be a regression at today's cost, the
check names the sidecar and both figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks import cpu_per_call

CALLS = int(os.environ.get("PY3SIDECAR_GUARD_CALLS", "2000"))
SLOWDOWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slowdown")


def measure(tmp_path, jython: bool, env: dict | None = None) -> dict:
    """benchmarks/cpu_per_call.py in a process of its own: the client's CPU is then only the
    calls' (this pytest process holds other tests' threads and sockets)."""
    out = tmp_path / "cpu.json"
    cmd = [sys.executable, str(cpu_per_call.__file__), "--calls", str(CALLS), "--rounds", "3",
           "--json", str(out)] + ([] if jython else ["--no-jython"])
    done = subprocess.run(cmd, env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=600, cwd=str(cpu_per_call.PROJECT_ROOT))
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def guard(tmp_path, jython: bool, env: dict | None = None) -> tuple[list[str], dict]:
    """The guard's verdict: a process fails only when two measurements in a row put it above
    1.5x of its baseline (one burst of the neighbours' load is not a regression; a regression
    shows every time). The failures (the second measurement's words) and that measurement."""
    base = baseline()
    result = measure(tmp_path, jython, env)
    first = cpu_per_call.check_against_baseline(result, base)
    if not first:
        return [], result
    again = measure(tmp_path, jython, env)
    flagged = {f.split(":", 1)[0] for f in first}
    return [f for f in cpu_per_call.check_against_baseline(again, base)
            if f.split(":", 1)[0] in flagged], again


def baseline() -> dict:
    assert cpu_per_call.BASELINE.exists(), (
        "benchmarks/baseline.json is missing: run `make bench-baseline` and commit it")
    return json.loads(cpu_per_call.BASELINE.read_text())


def test_every_process_stays_within_its_baseline_multiple(tmp_path):
    failures, result = guard(tmp_path, jython=True)
    assert set(cpu_per_call.GUARDED) <= set(result["multiples"]), result["multiples"]
    assert not failures, "\n".join(failures)


def test_the_guard_fails_on_a_deliberate_slowdown(tmp_path):
    base = baseline()
    # Busy work per call in the sidecar's dispatch: enough to be a 3x regression of the
    # baseline's sidecar cost (at least 50 us, the figure the issue names).
    sidecar_us = base["median_us"]["sidecar"]
    spin_us = max(50.0, sidecar_us * 2.0)
    env = dict(os.environ, PY3SIDECAR_BENCH_SLOWDOWN_US=f"{spin_us:.0f}",
               PYTHONPATH=os.pathsep.join(
                   p for p in (SLOWDOWN, str(cpu_per_call.PROJECT_ROOT),
                               os.environ.get("PYTHONPATH", "")) if p))
    failures, result = guard(tmp_path, jython=False, env=env)
    assert any(f.startswith("sidecar:") for f in failures), (
        f"a {spin_us:.0f} us slowdown per call was not caught: {result['multiples']}")
    message = next(f for f in failures if f.startswith("sidecar:"))
    assert "x the same-run floor" in message and "baseline" in message, message
    # The worker's cost did not change: it must not be named twice in a row.
    assert not any(f.startswith("worker:") for f in failures), failures
