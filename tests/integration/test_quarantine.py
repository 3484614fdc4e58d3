"""Covers: sidecar.routing.quarantine, bridge.breaker, sidecar.routing.chain.

Poison requests against a real sidecar: one caller's crashing request is quarantined and
never opens the breaker for everyone else."""

import json
import subprocess
import sys
import threading

import pytest

from bridge.client import BadRequest, Quarantined, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

# The first line is what operators see; the secret in the arguments must never show.
POISON = "import os\nos.kill(os.getpid(), 9)"
SECRET_VARS = {"password": "hunter2-s3cr3t"}


def run_cli(proc, *args):
    return subprocess.run([sys.executable, "-m", "sidecar", *args, "--endpoint", proc.endpoint],
                          capture_output=True, text=True, env=dict(proc.env), timeout=30)


def crash_while_another_caller_is_served(proc, crasher):
    """The crasher sends POISON 8 times; between its calls another caller must be served.
    Returns the crasher's kinds, its last error, and what the other caller saw."""
    served: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def other_caller() -> None:
        client = proc.client(timeout=10)
        while not stop.is_set():
            try:
                served.append(client.execute("21 * 2").value)
            except BaseException as exc:  # reported by the caller: every call must succeed
                failures.append(exc)

    thread = threading.Thread(target=other_caller)
    thread.start()
    kinds, last = [], None
    try:
        for _ in range(8):
            try:
                crasher.execute(POISON, SECRET_VARS)
                kinds.append("ok")
            except (WorkerCrashed, Quarantined) as exc:
                kinds.append(exc.kind)
                last = exc
            count = len(served)
            wait_until(lambda count=count: len(served) > count or failures, 10)
    finally:
        stop.set()
        thread.join(20)
    return kinds, last, served, failures


def check_health_shows_the_entry(other, fp):
    health = other.health()
    assert health["breakers"]["primary"]["state"] == "closed"
    assert health["breakers"]["primary"]["consecutive_failures"] <= 1
    assert health["pool"]["counters"]["crashes"] == 2  # 6 refusals never reached a worker
    [entry] = health["quarantine"]["entries"]
    assert (entry["fingerprint"], entry["op"], entry["label"], entry["crashes"]) == (
        fp, "execute", "import os", 2)
    assert entry["expires"] - entry["since"] == pytest.approx(1800, abs=1)
    assert health["quarantine"]["refused"] == 6
    assert "hunter2" not in json.dumps(health)


def check_operators_list_and_clear_it(proc, fp, other, crasher):
    text = run_cli(proc, "health")
    assert f"quarantined {fp}: execute 'import os', 2 crashes" in text.stdout
    listed = run_cli(proc, "quarantine", "list")
    assert listed.returncode == 0 and fp in listed.stdout and "hunter2" not in listed.stdout
    missing = run_cli(proc, "quarantine", "clear", "0000000000000000")
    assert missing.returncode == 1 and "no quarantined fingerprint" in missing.stderr
    cleared = run_cli(proc, "quarantine", "clear", fp)
    assert cleared.returncode == 0 and f"cleared {fp}" in cleared.stdout
    assert other.quarantine()["entries"] == []
    with pytest.raises(WorkerCrashed):  # lifted: it runs (and crashes) again
        crasher.execute(POISON, SECRET_VARS)
    log = proc.log()
    assert f"quarantine: {fp} quarantined" in log and f"quarantine: {fp} cleared" in log
    assert "hunter2" not in log


def test_one_crashing_caller_is_quarantined_and_others_keep_being_served(tmp_path):
    # A breaker that opens after 3 consecutive crashes: without the quarantine, the crasher
    # alone would open it (and every other caller would get circuit_open for 60 s).
    with SidecarProcess({"pool": {"initial-size": 2, "max-size": 2},
                         "worker": {"kill-grace": "200ms"},
                         "scaling": {"enabled": False},
                         "circuit-breaker": {"failure-threshold": 3}},
                        workdir=str(tmp_path)) as proc:
        crasher, other = proc.client(timeout=10), proc.client(timeout=10)
        kinds, last, served, failures = crash_while_another_caller_is_served(proc, crasher)
        assert kinds == ["crashed", "crashed"] + ["quarantined"] * 6
        assert failures == [] and set(served) == {42}
        assert isinstance(last, Quarantined) and last.kind == "quarantined"
        assert "py3sidecar quarantine clear" in last.message
        fp = last.details["fingerprint"]
        assert last.details["retry_after"] > 1700 and last.details["label"] == "import os"
        check_health_shows_the_entry(other, fp)
        # the same code with other arguments is another request: it runs
        assert other.execute("x = 1\nx + 1").value == 2
        with pytest.raises(WorkerCrashed):
            other.execute(POISON, {"password": "other"})
        check_operators_list_and_clear_it(proc, fp, other, crasher)


def test_crashes_back_to_back_with_the_default_breaker_never_refuse_another_caller(tmp_path):
    # Finding 2 as reported: the same crashing request six times in a row, nothing in between,
    # the default breaker (five consecutive failures open it). Before the quarantine the fifth
    # crash opened the primary breaker and an unrelated caller got circuit_open.
    with SidecarProcess({"pool": {"initial-size": 2, "max-size": 2},
                         "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False}},
                        workdir=str(tmp_path)) as proc:
        crasher, other = proc.client(timeout=10), proc.client(timeout=10)
        kinds = []
        for _ in range(6):
            with pytest.raises((WorkerCrashed, Quarantined)) as caught:
                crasher.execute(POISON)
            kinds.append(caught.value.kind)
        assert kinds == ["crashed", "crashed"] + ["quarantined"] * 4
        assert other.execute("1+1").value == 2
        assert other.health()["breakers"]["primary"]["state"] == "closed"


def test_op_bad_input_is_bad_request(sidecar):
    client = sidecar.client(timeout=5)
    with pytest.raises(BadRequest, match="unknown quarantine 'action' 'purge'"):
        client.quarantine("purge")
    with pytest.raises(BadRequest, match="'fingerprint' must be a string"):
        client.request({"op": "quarantine", "action": "clear", "fingerprint": [1]})
    assert isinstance(client.quarantine("list")["entries"], list)
