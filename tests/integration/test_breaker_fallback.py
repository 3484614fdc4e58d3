"""Covers: bridge.breaker, sidecar.routing.chain, sidecar.routing.strategies, bridge.client.

The circuit breaker and the fallback chain around real pools, real processes, real sockets.

A "broken interpreter" is a script given as ``python3.worker.python`` that exits at once: the
primary pool can never start a worker, which is how a broken virtualenv or a full disk looks.
"""

import subprocess
import sys
import threading
import time

import pytest

from bridge.client import CircuitOpen, PythonError, Unavailable, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

PYTHON = sys.executable


@pytest.fixture
def broken_python(tmp_path):
    script = tmp_path / "broken-python"
    script.write_text("#!/bin/sh\nexit 7\n")
    script.chmod(0o755)
    return str(script)


def breaker(client, name="primary"):
    return client.health()["breakers"][name]


def test_breaker_opens_around_a_pool_that_cannot_start_and_an_operator_can_close_it(
        tmp_path, broken_python):
    with SidecarProcess({"worker": {"python": broken_python},
                         "pool": {"initial-size": 1},
                         "recovery": {"restart-delay": "50ms", "restart-delay-max": "200ms"},
                         "circuit-breaker": {"failure-threshold": 3, "timeout": "60s"}},
                        workdir=str(tmp_path), ready_workers=0) as proc:
        client = proc.client(timeout=5)
        wait_until(lambda: proc.pool()["counters"]["spawn_failures"] >= 1, 10)
        for _ in range(3):  # counted failures: the pool answers `unavailable`
            with pytest.raises(Unavailable, match="exit code 7"):
                client.execute("1+1")
        state = breaker(client)
        assert state["state"] == "open"
        assert state["last_transition"]["reason"] == "3 consecutive failures"
        accepted = proc.pool()["counters"]["accepted"]
        with pytest.raises(CircuitOpen, match="circuit breaker is open") as info:
            client.execute("1+1")
        assert 55 < info.value.details["retry_after"] <= 60
        assert proc.pool()["counters"]["accepted"] == accepted  # the pool never saw it
        assert breaker(client)["rejected_calls"] == 1
        # operators: force open, then close (back to measuring the sick pool again)
        assert client.breaker("open")["breakers"]["primary"]["state"] == "forced_open"
        with pytest.raises(CircuitOpen) as info:
            client.execute("1+1")
        assert info.value.details["retry_after"] is None
        assert client.breaker("close")["breakers"]["primary"]["state"] == "closed"
        with pytest.raises(Unavailable, match="exit code 7"):
            client.execute("1+1")


def test_fallback_order_with_real_pools_and_user_errors_never_fall_through(
        tmp_path, broken_python):
    with SidecarProcess({"worker": {"python": broken_python},
                         "pool": {"initial-size": 1},
                         "circuit-breaker": {"failure-threshold": 2},
                         "fallback": {"strategies": ["primary", "secondary", "direct"],
                                      "secondary": {"python": PYTHON},
                                      "direct": {"python": PYTHON}}},
                        workdir=str(tmp_path), ready_workers=0) as proc:
        client = proc.client(timeout=10)
        # primary cannot serve -> secondary serves, every time; the breaker then skips primary
        results = [client.execute("import os; os.getpid()") for _ in range(4)]
        assert {r.via for r in results} == {"secondary"}
        wait_until(lambda: breaker(client)["state"] == "open", 5)
        # secondary forced open -> direct: a fresh process per call
        client.breaker("open", "secondary")
        first, second = client.execute("import os; os.getpid()"), client.execute(
            "import os; os.getpid()")
        assert first.via == second.via == "direct" and first.value != second.value
        # the user's own error is answered by the strategy that ran it, never retried
        fallback = client.health()["fallback"]
        with pytest.raises(PythonError, match="bad input"):
            client.execute("raise ValueError('bad input')")
        after = client.health()["fallback"]
        assert after["details"]["direct"]["started"] == fallback["details"]["direct"]["started"] + 1
        assert after["fell_through"]["direct"] == fallback["fell_through"]["direct"]
        client.breaker("close", "secondary")
        with pytest.raises(PythonError):
            client.execute("raise KeyError('k')")
        final = client.health()["fallback"]
        assert final["fell_through"]["secondary"] == after["fell_through"]["secondary"]
        assert final["details"]["direct"]["started"] == after["details"]["direct"]["started"]


def test_timeouts_and_crashes_do_not_fall_through(tmp_path, broken_python):
    with SidecarProcess({"pool": {"initial-size": 1},
                         "worker": {"kill-grace": "100ms"},
                         "fallback": {"strategies": ["primary", "direct"],
                                      "direct": {"python": PYTHON}}},
                        workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        assert client.execute("1").via == "primary"
        with pytest.raises(WorkerCrashed):
            client.execute("import os; os._exit(3)")
        from bridge.client import CallTimeout
        with pytest.raises(CallTimeout):
            client.execute("import time; time.sleep(5)", timeout=0.3)
        assert client.health()["fallback"]["details"]["direct"]["started"] == 0


def test_every_strategy_failing_answers_unavailable_listing_each(tmp_path, broken_python):
    with SidecarProcess({"worker": {"python": broken_python},
                         "pool": {"initial-size": 1},
                         "fallback": {"strategies": ["primary", "direct"],
                                      "direct": {"python": broken_python}}},
                        workdir=str(tmp_path), ready_workers=0) as proc:
        client = proc.client(timeout=5)
        wait_until(lambda: proc.pool()["counters"]["spawn_failures"] >= 1, 10)
        with pytest.raises(Unavailable) as info:
            client.execute("1+1")
        text = str(info.value)
        assert "no execution strategy could serve this call" in text
        assert "primary: unavailable" in text and "direct: unavailable" in text
        assert [a["strategy"] for a in info.value.details["attempts"]] == ["primary", "direct"]


def test_half_open_under_concurrency_admits_only_the_probes(tmp_path):
    probes = 2
    with SidecarProcess({"pool": {"initial-size": 3, "max-size": 3},
                         "worker": {"kill-grace": "100ms"},
                         "circuit-breaker": {"failure-threshold": 2, "timeout": "300ms",
                                             "half-open-max-probes": probes,
                                             "success-threshold": probes}},
                        workdir=str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        for code in ("import os; os._exit(9)", "import os; os._exit(8)"):
            with pytest.raises(WorkerCrashed):  # two requests: repeats of one count once
                client.execute(code)
        assert breaker(client)["state"] == "open"
        proc.wait_full_strength(3)
        wait_until(lambda: breaker(client)["state"] == "half_open", 5)
        accepted = proc.pool()["counters"]["accepted"]
        n = 10
        gate = threading.Barrier(n)
        outcomes: list[tuple[str, float]] = []

        def one() -> None:
            gate.wait(timeout=20)
            started = time.monotonic()
            try:
                client.execute("import time; time.sleep(0.5); 1")
                outcomes.append(("ok", time.monotonic() - started))
            except CircuitOpen:
                outcomes.append(("circuit_open", time.monotonic() - started))

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        kinds = sorted(kind for kind, _ in outcomes)
        assert kinds == ["circuit_open"] * (n - probes) + ["ok"] * probes
        assert proc.pool()["counters"]["accepted"] - accepted == probes
        # rejected callers did not wait behind the probes (which take 0.5 s each)
        assert max(s for kind, s in outcomes if kind == "circuit_open") < 0.4
        state = breaker(client)
        assert state["state"] == "closed"
        assert state["last_transition"]["reason"] == f"{probes} successful probes"


def test_remote_strategy_forwards_to_another_sidecar(tmp_path, broken_python):
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    with SidecarProcess({"pool": {"initial-size": 1}}, workdir=str(remote_dir)) as remote:
        local_dir = tmp_path / "local"
        local_dir.mkdir()
        with SidecarProcess({"worker": {"python": broken_python}, "pool": {"initial-size": 1},
                             "fallback": {"strategies": ["primary", "remote"],
                                          "remote": {"endpoint": remote.endpoint,
                                                     "token": remote.token}}},
                            workdir=str(local_dir), ready_workers=0) as local:
            client = local.client(timeout=5)
            result = client.execute("import os; os.getpid()")
            assert result.via == "remote"
            remote_pids = {w["pid"] for w in remote.pool()["workers"]}
            assert result.value in remote_pids
            with pytest.raises(PythonError, match="from afar"):
                client.execute("raise RuntimeError('from afar')")
            remote.stop()
            with pytest.raises(Unavailable, match="remote"):
                client.execute("1+1", timeout=1)


def test_cli_breaker_status_open_close(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1}}, workdir=str(tmp_path)) as proc:
        def cli(*args):
            return subprocess.run([PYTHON, "-m", "sidecar", "breaker", *args, "--endpoint",
                                   proc.endpoint, f"--token={proc.token}"],
                                  capture_output=True, text=True, timeout=30)
        out = cli("status")
        assert out.returncode == 0 and "breaker primary: closed" in out.stdout
        out = cli("open")
        assert "breaker primary: forced_open" in out.stdout
        assert "forced open by operator" in out.stdout
        with pytest.raises(CircuitOpen, match="forced open by an operator"):
            proc.client(timeout=5).execute("1")
        assert "breaker primary: closed" in cli("close").stdout
        assert proc.client(timeout=5).execute("1").value == 1
        wrong = subprocess.run([PYTHON, "-m", "sidecar", "breaker", "open", "--endpoint",
                                proc.endpoint, "--token", "wrong"],
                               capture_output=True, text=True, timeout=30)
        assert wrong.returncode == 1 and "unauthorized" in wrong.stderr
        assert proc.client(timeout=5).breaker()["breakers"]["primary"]["state"] == "closed"
