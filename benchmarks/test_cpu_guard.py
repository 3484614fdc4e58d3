"""Covers: sidecar.service, sidecar.pool.local, sidecar.worker.main, bridge.client,
    ignition-scripts/ignition/script-python/python3.

The hot execution path's CPU per process (the sidecar, its workers, the CPython client, the
Jython library): the guard the design card asks for.

Each process's CPU per trivial call, as a multiple of the same-run floor
(benchmarks/cpu_per_call.py), must stay within 1.5x of the committed baseline
(benchmarks/baseline.json, refreshed by ``make bench-baseline``). CPU multiples, not wall
times: they hold on a noisy machine. A second case shows the guard bites: with a deliberate
slowdown of the sidecar's dispatch (benchmarks/slowdown/sitecustomize.py) large enough to be
a regression at today's cost, the check names the sidecar and both figures.
"""

from __future__ import annotations

import json
import os

from benchmarks import cpu_per_call

CALLS = int(os.environ.get("PY3SIDECAR_GUARD_CALLS", "2000"))
SLOWDOWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slowdown")


def baseline() -> dict:
    assert cpu_per_call.BASELINE.exists(), (
        "benchmarks/baseline.json is missing: run `make bench-baseline` and commit it")
    return json.loads(cpu_per_call.BASELINE.read_text())


def test_every_process_stays_within_its_baseline_multiple():
    result = cpu_per_call.run(CALLS, rounds=3, jython=True, jython_transports=("py4j",))
    cpu_per_call.print_table(result, CALLS)
    failures = cpu_per_call.check_against_baseline(result, baseline())
    assert set(cpu_per_call.GUARDED) <= set(result["multiples"]), result["multiples"]
    assert not failures, "\n".join(failures)


def test_the_guard_fails_on_a_deliberate_slowdown(monkeypatch):
    base = baseline()
    # Busy work per call in the sidecar's dispatch: enough to be a 2x regression of the
    # baseline's sidecar cost (at least 50 us, the figure the issue names).
    sidecar_us = base["median_us"]["sidecar"]
    spin_us = max(50.0, sidecar_us * 1.0)
    monkeypatch.setenv("PY3SIDECAR_BENCH_SLOWDOWN_US", f"{spin_us:.0f}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (SLOWDOWN, os.environ.get("PYTHONPATH", "")) if p))
    result = cpu_per_call.run(CALLS, rounds=3, jython=False)
    failures = cpu_per_call.check_against_baseline(result, base)
    assert any(f.startswith("sidecar:") for f in failures), (
        f"a {spin_us:.0f} us slowdown per call was not caught: {result['multiples']}")
    message = next(f for f in failures if f.startswith("sidecar:"))
    assert "x the same-run floor" in message and "baseline" in message, message
    assert not any(f.startswith("worker:") for f in failures), failures
