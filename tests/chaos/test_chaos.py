"""Covers: sidecar.pool.local, sidecar.pool.lifecycle, sidecar.supervision.watchdog,
    sidecar.supervision.recovery, sidecar.supervision.resources, bridge.client.

Chaos with real processes, each bounded in time: kills under load, memory pressure, CPU
limits, hangs found by the watchdog, cascading spawn failures, and no false alarms under load.
"""

import os
import random
import signal
import threading
import time

import psutil
import pytest

from bridge.client import CallTimeout, PythonError, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

FAST_WATCHDOG = {"quick-check-interval": "100ms", "check-interval": "300ms",
                 "resource-check-interval": "300ms", "ping-timeout": "300ms",
                 "hang-after": "1s"}


def worker_pids(proc: SidecarProcess) -> list[int]:
    return [w["pid"] for w in proc.pool()["workers"]
            if w["role"] == "member" and w["state"] in ("idle", "busy")]


def run_load(client, seconds: float, threads: int, code: str):
    """Call in a loop from several threads; return every outcome (value or exception)."""
    outcomes: list = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop():
        while time.monotonic() < deadline:
            try:
                result = client.execute(code, timeout=10)
                outcome = result.value
            except Exception as exc:  # every outcome is recorded and asserted on
                outcome = exc
            with lock:
                outcomes.append(outcome)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for t in workers:
        t.start()
    return workers, outcomes


def test_random_sigkills_under_load_fail_only_the_calls_in_flight(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        threads, outcomes = run_load(client, 3.0, 4, "import time; time.sleep(0.003); 7")
        killed = []
        rng = random.Random(7)
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            pids = worker_pids(proc)
            if pids:
                pid = rng.choice(pids)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.15)  # the kill rate, not a synchronisation
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads)
        crashed = [o for o in outcomes if isinstance(o, WorkerCrashed)]
        others = [o for o in outcomes if isinstance(o, Exception)
                  and not isinstance(o, WorkerCrashed)]
        assert not others, others[:3]  # no timeouts, no lost replies, nothing unavailable
        assert len(killed) >= 10
        assert len(crashed) <= len(killed)
        assert {c.details["pid"] for c in crashed} <= set(killed)
        assert sum(1 for o in outcomes if o == 7) > 100
        proc.wait_full_strength(2)
        wait_until(lambda: proc.pool()["size"]["spares_ready"] == 1, 10,
                   message="the warm spare refilled")


def test_memory_growth_recycles_after_the_call(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 1},
                         "resources": {"max-memory-per-worker": "150MiB",
                                       "sample-interval": "0ms"},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=20)
        first = client.execute("import os; os.getpid()").value
        value = client.execute("import builtins, os\n"
                               "builtins._leak = b'x' * (200 << 20)\nos.getpid()").value
        assert value == first  # the call itself succeeded: recycling waits for it
        wait_until(lambda: proc.pool()["counters"]["recycled"] >= 1, 10)
        wait_until(lambda: first not in worker_pids(proc), 10, message="old worker gone")
        assert client.execute("import os; os.getpid()").value != first
        failures = proc.client().health()["recovery"]["failures_by_type"]
        assert failures["MEMORY_LEAK"] >= 1


def test_address_space_limit_gives_memory_error_and_recycles(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 1},
                         "resources": {"address-space-limit": "1GiB"},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=20)
        first = client.execute("import os; os.getpid()").value
        with pytest.raises(PythonError) as info:
            client.execute("b'x' * (2 << 30)")
        assert info.value.remote_type == "MemoryError"
        wait_until(lambda: first not in worker_pids(proc), 10, message="recycled")
        assert client.execute("1+1").value == 2


def test_cpu_limit_kills_a_runaway_call_and_is_classified(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 1},
                         "resources": {"cpu-limit": 1},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=30)
        # a warm worker that already burnt CPU keeps its full per-call budget
        assert client.execute("sum(range(3_000_000))").value > 0
        with pytest.raises(WorkerCrashed, match="SIGXCPU"):
            client.execute("while True: pass", timeout=20)
        assert client.execute("1+1").value == 2
        wait_until(lambda: proc.client().health()["recovery"]["failures_by_type"]
                   ["RESOURCE_EXHAUSTION"] >= 1, 5)


@pytest.mark.parametrize("code, kind", [
    ("import threading\nthreading.Event().wait()", "DEADLOCK"),
    ("import time\ntime.sleep(120)", "HANG"),
])
def test_busy_worker_stuck_without_cpu_is_found_and_its_stack_captured(tmp_path, code, kind):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "health": FAST_WATCHDOG, "circuit-breaker": {"enabled": False},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=60)
        started = time.monotonic()
        with pytest.raises(WorkerCrashed, match="stopped by the watchdog") as info:
            client.execute(code, timeout=50)
        assert time.monotonic() - started < 10  # found long before its 50 s timeout
        assert "<python3.execute" in (info.value.traceback or "")  # the user's line is there
        recovery = proc.client().health()["recovery"]
        assert recovery["failures_by_type"][kind] >= 1
        assert any("<python3.execute" in f["stack"] for f in recovery["recent_failures"])
        assert client.execute("1+1").value == 2


def test_idle_worker_that_stops_answering_pings_is_replaced(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "health": FAST_WATCHDOG, "circuit-breaker": {"enabled": False},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        # An idle worker frozen from outside (a thread the call left to hog the GIL would not
        # get this far: the worker is recycled after such a call, test_call_isolation.py).
        pid = client.execute("import os; os.getpid()").value
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
                   15, message="unresponsive worker killed")
        recovery = proc.client().health()["recovery"]
        assert any(f["pid"] == pid and f["type"] in ("HANG", "DEADLOCK")
                   for f in recovery["recent_failures"])
        assert proc.client().health()["watchdog"]["ping_failures"] >= 1
        for _ in range(5):
            assert client.execute("1+1").value == 2


def test_cascading_spawn_failures_back_off_escalate_and_recover(tmp_path):
    flag = tmp_path / "broken"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then exit 3; fi\n"
                       f"exec {os.sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    with SidecarProcess({"worker": {"python": str(wrapper)},
                         "pool": {"initial-size": 2, "spares": 0},
                         "recovery": {"max-restart-attempts": 3, "restart-delay": "50ms",
                                      "restart-delay-max": "400ms"},
                         "health": FAST_WATCHDOG, "circuit-breaker": {"enabled": False},
                         "scaling": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=5)
        assert client.execute("1+1").value == 2
        flag.write_text("")  # from now on every start fails (a broken interpreter)
        for pid in worker_pids(proc):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: proc.client().health()["recovery"]["escalated"], 10,
                   message="escalation")
        report = proc.client().health()
        assert report["status"] == "UNHEALTHY"
        assert any(e["level"] == "CRITICAL" for e in report["recovery"]["events"])
        before = report["pool"]["counters"]["spawn_failures"]
        time.sleep(1.0)  # observe the rate of attempts over a second
        during = proc.client().health()["pool"]["counters"]["spawn_failures"] - before
        assert during <= 6, f"{during} spawn attempts in 1s: a fork storm"
        flag.unlink()  # the cause goes away: the pool heals by itself
        wait_until(lambda: proc.client().health()["status"] != "UNHEALTHY", 15,
                   message="recovery")
        report = proc.client().health()
        assert not report["recovery"]["escalated"]
        assert any("recovered" in e["message"] for e in report["recovery"]["events"])
        assert client.execute("1+1").value == 2


def test_no_false_positives_under_heavy_healthy_load(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 2, "spares": 1},
                         "health": FAST_WATCHDOG, "scaling": {"enabled": False}},
                        workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=30)
        # CPU-bound calls of ~20 ms from 4 threads, plus one long CPU-bound call of ~2 s:
        # it gains CPU all along, so it is never "stuck", only slow.
        long_call = threading.Thread(target=lambda: client.execute(
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 2: pass",
            timeout=20))
        long_call.start()
        threads, outcomes = run_load(client, 3.0, 4, "sum(i * i for i in range(100_000))")
        for t in [*threads, long_call]:
            t.join(30)
        assert outcomes and all(not isinstance(o, Exception) for o in outcomes)
        report = proc.client().health()
        assert report["watchdog"]["evaluations"] > 0
        assert report["watchdog"]["findings"] == 0
        assert report["pool"]["counters"]["kills"] == 0
        assert report["pool"]["counters"]["crashes"] == 0
        assert sum(report["recovery"]["failures_by_type"].values()) == 0


def test_timeout_reply_carries_the_stack_of_the_running_line(sidecar, client):
    with pytest.raises(CallTimeout) as info:
        client.execute("def spin():\n    while True:\n        pass\nspin()", timeout=0.5)
    assert "spin" in (info.value.traceback or "")
    sidecar.wait_full_strength(2)
