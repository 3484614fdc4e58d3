"""Covers: sidecar.service, sidecar.process.spawn, bridge.connection.

When the sidecar itself ends, nothing it started lives on, and its successor starts clean.

Real sidecars, real SIGKILL/SIGTERM: workers die with a SIGKILLed sidecar (PR_SET_PDEATHSIG),
even one busy in user code; a clean stop kills every worker's process group, idle ones included;
the connection file and stack folder a SIGKILLed sidecar leaves are cleaned at the next start.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import zmq

from bridge import codec
from bridge.connection import read_connection_file
from sidecar.testing import SidecarProcess, wait_until

SMALL = {"pool": {"initial-size": 2, "min-size": 1, "max-size": 2, "spares": 0},
         "scaling": {"enabled": False}, "health": {"enabled": False},
         "circuit-breaker": {"enabled": False}}


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for whoever adopted it counts: it runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def leftovers():
    """Pids a failing test might leave running: killed at teardown, so a failure leaks none."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def worker_pids(sidecar: SidecarProcess) -> list[int]:
    return [w["pid"] for w in sidecar.pool()["workers"]]


def stack_folder(worker_pid: int) -> Path:
    """The folder of the stack file a worker holds open (wherever the sidecar put it)."""
    for fd in os.listdir(f"/proc/{worker_pid}/fd"):
        try:
            target = os.readlink(f"/proc/{worker_pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".stack"):
            return Path(target).parent
    raise AssertionError(f"worker {worker_pid} holds no stack file")


def start_busy_call(sidecar: SidecarProcess, pid_file: Path) -> zmq.Socket:
    """Sends a call that sleeps in user code (its worker reads nothing) after writing its pid;
    returns the DEALER socket it was sent on (the reply never comes: nobody waits for it)."""
    sock = sidecar.authenticate(zmq.Context.instance().socket(zmq.DEALER))
    sock.linger = 0
    sock.connect(sidecar.endpoint)
    sock.send(codec.packb({"v": 1, "id": 1, "token": sidecar.token, "op": "execute",
                           "timeout": 60, "code": f"import os, time\nopen({str(pid_file)!r}, "
                           "'w').write(str(os.getpid()))\ntime.sleep(1000)"}))
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 10,
               message="the busy call's worker pid")
    return sock


def test_workers_die_with_a_sigkilled_sidecar_busy_or_idle(tmp_path, leftovers):
    sidecar = SidecarProcess(SMALL, workdir=str(tmp_path / "sidecar"))
    with sidecar:
        pids = worker_pids(sidecar)
        leftovers += pids
        assert len(pids) == 2
        busy = start_busy_call(sidecar, tmp_path / "busy.pid")
        busy_pid = int((tmp_path / "busy.pid").read_text())
        assert busy_pid in pids
        sidecar.proc.kill()
        sidecar.proc.wait(10)
        wait_until(lambda: all(gone(pid) for pid in pids), 10,
                   message=f"workers {pids} gone after the sidecar was SIGKILLed")
        busy.close()


def test_clean_stop_kills_what_calls_left_in_idle_workers_groups(tmp_path, leftovers):
    sidecar = SidecarProcess(SMALL, workdir=str(tmp_path / "sidecar"))
    with sidecar:
        client = sidecar.client(timeout=10.0)
        # A long-lived grandchild in the worker's own process group; the call returns, so
        # its worker is idle when the sidecar stops.
        # (A call that leaves a child recycles its worker, sidecar/worker/isolation.py: the worker's
        # exit or the stop ends the child, whichever comes first.)
        grandchild, worker_pid, group = client.execute(
            "import os, subprocess\np = subprocess.Popen(['sleep', '1000']).pid\n"
            "(p, os.getpid(), os.getpgid(p))").value
        leftovers.append(grandchild)
        assert group == worker_pid  # it was in the worker's own process group
    assert sidecar.proc.returncode == 0
    wait_until(lambda: gone(grandchild), 10,
               message=f"the grandchild {grandchild} gone after the sidecar's clean stop")


def test_a_killed_sidecars_connection_file_and_stack_folder_are_cleaned_at_next_start(
        tmp_path, leftovers):
    first = SidecarProcess(SMALL, workdir=str(tmp_path))
    with first:
        dead_pid = first.proc.pid
        leftovers += worker_pids(first)
        stacks = stack_folder(worker_pids(first)[0])
        first.proc.kill()
        first.proc.wait(10)
    # What a SIGKILL leaves behind: a connection file naming a dead pid, the stack folder.
    assert read_connection_file(first.connection_file)["pid"] == dead_pid
    assert stacks.is_dir()
    log_before = len(first.log())

    second = SidecarProcess(SMALL, workdir=str(tmp_path))
    with second:
        assert second.connection["pid"] == second.proc.pid
        assert not stacks.exists(), f"{stacks} of the dead sidecar is still there"
        log = second.log()[log_before:]
        assert f"removed the stale connection file {first.connection_file}" in log
        assert f"pid {dead_pid}, which is not running" in log
        assert "removed the stack folder" in log
        # This sidecar's own stack folder is the one its workers use now.
        assert stack_folder(worker_pids(second)[0]).is_dir()
        assert second.client().execute("1 + 1").value == 2
    assert not first.connection_file.exists()
