"""Covers: sidecar.pool.local, sidecar.pool.lifecycle, sidecar.pool.spawn_policy.

Pool limits with real processes: a full queue, spawn failures bounded by the restart limit,
graceful shutdown."""

import subprocess
import sys
import threading
import time

import pytest

from bridge.client import Overloaded, Unavailable
from sidecar.testing import SidecarProcess, wait_until


def test_full_queue_answers_overloaded_at_once(tmp_path):
    # No watchdog probes here: a call arriving while the only worker answers a probe is queued
    # for that sub-millisecond, which would make the queue's content racy in this test.
    with SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                  "queue-size": 1, "spares": 0},
                         "health": {"enabled": False}}, workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=20)
        flag = tmp_path / "go"
        threads = [threading.Thread(target=lambda: client.execute(
            f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.005)\n1"))
            for _ in range(2)]
        for t in threads:
            t.start()
        def one_running_one_queued():
            pool = proc.pool()
            return pool["queue"]["length"] == 1 and pool["workers_by_state"]["busy"] == 1

        wait_until(one_running_one_queued, 10, message="one call running, one queued")
        started = time.monotonic()
        with pytest.raises(Overloaded, match="queue is full"):
            client.execute("1+1")
        assert time.monotonic() - started < 2.0  # answered, not waited out
        flag.write_text("")
        for t in threads:
            t.join(10)
        assert client.execute("1+1").value == 2


def spawn_failures(proc: SidecarProcess) -> int:
    return proc.pool()["counters"]["spawn_failures"]


def test_missing_interpreter_is_bounded_and_fails_fast(tmp_path):
    proc = SidecarProcess({"worker": {"python": "/nonexistent/python3"},
                           "pool": {"initial-size": 2, "spares": 0},
                           "recovery": {"restart-delay": "100ms", "restart-delay-max": "1s"}},
                          workdir=str(tmp_path), ready_workers=0)
    before_any_attempt = time.monotonic()
    with proc:
        client = proc.client(timeout=5)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="no Python worker could be started"):
            client.execute("1+1")
        assert time.monotonic() - started < 2.0
        # It keeps trying (a fifth failed start within the deadline), never in a storm: with
        # 100ms doubling to 1s the fifth failure comes at least 1.0s after the first (two
        # starts at once: 0.2 + 0.8; one at a time: 0.1 + 0.2 + 0.4 + 0.8).
        wait_until(lambda: spawn_failures(proc) >= 5, 20, message="a fifth failed start")
        assert time.monotonic() - before_any_attempt >= 1.0, spawn_failures(proc)
        assert "/nonexistent/python3" in proc.pool()["spawn"]["last_error"]


def test_worker_that_dies_at_start_backs_off(tmp_path):
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\nexit 7\n")
    broken.chmod(0o755)
    before_any_attempt = time.monotonic()
    with SidecarProcess({"worker": {"python": str(broken)},
                         "pool": {"initial-size": 1, "spares": 0},
                         "recovery": {"restart-delay": "50ms", "restart-delay-max": "400ms"}},
                        workdir=str(tmp_path), ready_workers=0) as proc:
        client = proc.client(timeout=5)
        wait_until(lambda: spawn_failures(proc) >= 3, 10)
        with pytest.raises(Unavailable, match="exit code 7"):
            client.execute("1+1")
        # Backing off, not a storm: 50ms doubling to 400ms puts the fifth failed start at
        # least 0.05 + 0.1 + 0.2 + 0.4 = 0.75s after the first.
        wait_until(lambda: spawn_failures(proc) >= 5, 20, message="a fifth failed start")
        assert time.monotonic() - before_any_attempt >= 0.75, spawn_failures(proc)


def test_sigterm_drains_calls_in_flight(tmp_path):
    proc = SidecarProcess({"pool": {"initial-size": 1}}, workdir=str(tmp_path)).start()
    client = proc.client(timeout=10)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "v", client.execute("import time; time.sleep(0.5); 'finished'").value))
    t.start()
    wait_until(lambda: proc.pool()["workers_by_state"]["busy"] == 1, 5)
    proc.proc.terminate()
    t.join(10)
    assert out.get("v") == "finished"
    assert proc.proc.wait(10) == 0
    proc.stop()


def test_bad_config_file_names_key_and_value(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("python3:\n  pool:\n    max-size: lots\n")
    result = subprocess.run([sys.executable, "-m", "sidecar", "serve", "--config", str(bad)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "python3.pool.max-size = 'lots'" in result.stderr


def test_calls_still_running_after_the_drain_get_an_answer(tmp_path):
    proc = SidecarProcess({"pool": {"initial-size": 1}, "shutdown": {"drain-timeout": "300ms"}},
                          workdir=str(tmp_path)).start()
    client = proc.client(timeout=30)
    out = {}

    def slow():
        try:
            client.execute("import time; time.sleep(20)")
        except Exception as exc:  # asserted below
            out["error"] = exc

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: proc.pool()["workers_by_state"]["busy"] == 1, 5)
    started = time.monotonic()
    proc.proc.terminate()
    t.join(15)
    # answered by the sidecar as it shut down, not by the client's own 32 s deadline
    assert isinstance(out.get("error"), Unavailable), out
    assert "shut down" in str(out["error"])
    assert time.monotonic() - started < 10
    assert proc.proc.wait(10) == 0
    proc.stop()
