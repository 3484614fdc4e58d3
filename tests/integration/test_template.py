"""Covers: sidecar.process.template, sidecar.process.template_server, sidecar.pool.lifecycle.

Workers forked from the warm template (``python3.worker.spawn: template``) keep every
guarantee of a plain spawn, and the template's own failures never cost a call.

Real sidecars, real SIGKILLs: a forked worker is the sidecar's child, leads its own process
group, holds its pipes at fds >= 200 close-on-exec, dies with the sidecar (not the template),
writes fd 1/2 to the log and dumps its stack; a killed template is respawned while workers are
spawned plain; kill storms on forked workers leave no zombie; a reload renews the template; a
pool on another interpreter, or a preload that leaves threads, spawns plain.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from bridge.client import CallTimeout, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 1,
                   "max-restarts": 1000},
          "scaling": {"enabled": False}, "health": {"enabled": False},
          "circuit-breaker": {"enabled": False}, "quarantine": {"enabled": False}}


def template(sidecar: SidecarProcess) -> dict:
    return sidecar.pool()["template"]


def all_forked(sidecar: SidecarProcess) -> bool:
    pool = sidecar.pool()
    live = [w for w in pool["workers"] if w["state"] != "stopping"]
    return (len(live) == 2 and all(w["state"] == "idle" for w in live)
            and all(w["spawned"] == "template" for w in live))


def make_all_forked(sidecar: SidecarProcess) -> None:
    """The first workers start with the sidecar, before the template is ready: replace them."""
    wait_until(lambda: template(sidecar)["state"] == "ready", 20, message="template ready")
    for _ in range(4):
        if all_forked(sidecar):
            return
        for w in sidecar.pool()["workers"]:
            if w["spawned"] == "plain" and w["state"] == "idle":
                os.kill(w["pid"], signal.SIGKILL)
        try:
            wait_until(lambda: all_forked(sidecar), 5, interval=0.005)
        except TimeoutError:
            continue
    assert all_forked(sidecar), sidecar.pool()["workers"]


def member(sidecar: SidecarProcess) -> dict:
    return wait_until(lambda: next((w for w in sidecar.pool()["workers"]
                                    if w["role"] == "member" and w["state"] == "idle"), None),
                      10, interval=0.002, message="an idle member")


def kill_member(sidecar: SidecarProcess) -> None:
    """SIGKILL an idle member and wait until the pool has seen it die (until then it is listed
    idle, and a call sent to it in that instant is answered `crashed`)."""
    pid = member(sidecar)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid not in [w["pid"] for w in sidecar.pool()["workers"]], 10,
               message=f"worker {pid}'s death seen")


def sidecar_children_are_its_own(sidecar: SidecarProcess) -> None:
    """Every child of the sidecar is a live worker or the template: no zombie, no stranger."""
    pool = sidecar.pool()
    expected = {w["pid"] for w in pool["workers"]} | {pool["template"]["pid"]}
    children = psutil.Process(sidecar.proc.pid).children()
    zombies = [c.pid for c in children if c.status() == psutil.STATUS_ZOMBIE]
    assert not zombies
    assert {c.pid for c in children} <= expected


@pytest.fixture
def sidecar(tmp_path):
    with SidecarProcess(CONFIG, workdir=str(tmp_path)) as proc:
        make_all_forked(proc)
        yield proc


PROBE = """
import ctypes, fcntl, os
libc = ctypes.CDLL(None)
sig = ctypes.c_int(0)
libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass  # the listing's own descriptor
high = {fd: bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for fd in fds if fd >= 200}
os.write(1, b"fd-one-of-a-forked-worker\\n")
{"ppid": os.getppid(), "pgid": os.getpgid(0), "pid": os.getpid(), "pdeathsig": sig.value,
 "high": high, "fd1": fds.get(1, ""), "sockets": [t for t in fds.values() if "socket" in t]}
"""


def test_a_forked_worker_keeps_the_guarantees_of_a_plain_spawn(sidecar):
    client = sidecar.client()
    probe = client.execute(PROBE).value
    assert probe["ppid"] == sidecar.proc.pid  # the sidecar's child (CLONE_PARENT)
    assert probe["pgid"] == probe["pid"]  # leads its own process group
    assert probe["pdeathsig"] == signal.SIGKILL
    assert len(probe["high"]) >= 3 and all(probe["high"].values())  # in, out, stack: cloexec
    assert probe["fd1"].startswith("pipe:")
    assert not probe["sockets"]  # the template's socket is closed: user code cannot reach it
    wait_until(lambda: "fd-one-of-a-forked-worker" in sidecar.log(), 5)
    with pytest.raises(CallTimeout) as info:  # stack captured from the forked worker
        client.execute("import time\ntime.sleep(30)", timeout=0.5)
    assert "in run_call" in (info.value.traceback or ""), info.value.traceback
    with pytest.raises(WorkerCrashed) as crashed:  # a crash matrix cell: segfault in user code
        client.execute("import ctypes\nctypes.string_at(0)")
    assert crashed.value.details.get("signal") == signal.SIGSEGV
    assert client.execute("1+1").value == 2
    sidecar.wait_full_strength(1)
    sidecar_children_are_its_own(sidecar)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_template_takes_no_worker_and_is_respawned(sidecar):
    client = sidecar.client()
    old = template(sidecar)
    workers = [w["pid"] for w in sidecar.pool()["workers"]]
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: template(sidecar)["pid"] != old["pid"], 10, message="template death seen")
    assert all(alive(pid) for pid in workers), "a forked worker died with its template"
    # Meanwhile a dead member is replaced (plain spawn or a new template), and every call is
    # served once its death is seen (a WorkerCrashed here is a failure, not a race).
    kill_member(sidecar)
    for _ in range(20):
        assert client.execute("1+1").value == 2
    wait_until(lambda: template(sidecar)["state"] == "ready"
               and template(sidecar)["pid"] != old["pid"], 20, message="a new template")
    forks = template(sidecar)["forks"]
    os.kill(member(sidecar)["pid"], signal.SIGKILL)
    wait_until(lambda: template(sidecar)["forks"] > forks, 10, message="forks again")
    assert template(sidecar)["failures"] >= 1
    sidecar.wait_full_strength(1)
    sidecar_children_are_its_own(sidecar)


def test_a_kill_storm_on_forked_workers_and_their_template(sidecar):
    client = sidecar.client(timeout=10)
    answered = 0
    start = template(sidecar)
    for round_ in range(24):
        if round_ % 8 == 4 and template(sidecar)["pid"]:
            os.kill(template(sidecar)["pid"], signal.SIGKILL)
        os.kill(member(sidecar)["pid"], signal.SIGKILL)
        for _attempt in range(3):
            try:
                assert client.execute("2+2").value == 4
                answered += 1
                break
            except WorkerCrashed:
                pass
    assert answered == 24
    wait_until(lambda: template(sidecar)["state"] == "ready", 20)
    wait_until(lambda: all_forked(sidecar) or sidecar.pool()["size"]["spares_ready"] >= 1, 10)
    sidecar.wait_full_strength(1)
    end = template(sidecar)
    # Every killed worker was replaced, forked while a template was ready, plain while not
    # (how many of each depends on how fast the template comes back on this machine).
    replaced = lambda view: view["forks"] + view["plain_spawns"]  # noqa: E731
    assert replaced(end) - replaced(start) >= 24, (start, end)
    assert end["forks"] > start["forks"], (start, end)
    assert end["started"] - start["started"] >= 3, (start, end)  # each killed one respawned
    # and the last template, ready again, is the one that replaces the next dead worker.
    os.kill(member(sidecar)["pid"], signal.SIGKILL)
    wait_until(lambda: template(sidecar)["forks"] > end["forks"], 10, message="forks again")
    wait_until(lambda: not [c for c in psutil.Process(sidecar.proc.pid).children()
                            if c.status() == psutil.STATUS_ZOMBIE], 5, message="no zombie")
    sidecar_children_are_its_own(sidecar)


def test_forked_workers_and_the_template_die_with_a_sigkilled_sidecar(sidecar):
    pids = [w["pid"] for w in sidecar.pool()["workers"]] + [template(sidecar)["pid"]]
    os.kill(sidecar.proc.pid, signal.SIGKILL)
    sidecar.proc.wait(10)

    wait_until(lambda: not any(alive(pid) for pid in pids), 10, message="workers gone")


def test_a_reload_renews_the_template(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "versioned.py").write_text("VERSION = 1\n")
    config = {**CONFIG, "worker": {"paths": [str(scripts)], "preload": ["versioned"]}}
    with SidecarProcess(config, workdir=str(tmp_path / "sidecar")) as proc:
        make_all_forked(proc)
        old = template(proc)["pid"]
        time.sleep(0.05)  # a later mtime than the first version's
        (scripts / "versioned.py").write_text("VERSION = 2\n")
        wait_until(lambda: template(proc)["pid"] not in (old, None)
                   and template(proc)["state"] == "ready", 20, message="template renewed")
        client = proc.client()
        wait_until(lambda: client.execute("import versioned\nversioned.VERSION").value == 2,
                   20, message="the new code served")
        # Renewed workers started plain (the new template was not ready yet); the next
        # replacement is forked from the new template, on the new code.
        forks = template(proc)["forks"]
        os.kill(member(proc)["pid"], signal.SIGKILL)
        wait_until(lambda: template(proc)["forks"] > forks, 10, message="a fork")
        make_all_forked(proc)
        assert client.execute("import versioned\nversioned.VERSION").value == 2


@pytest.mark.parametrize("worker", [{"spawn": "plain"}, {"python": f"{sys.executable} -u"}],
                         ids=["spawn-plain", "another-interpreter"])
def test_plain_spawn_when_asked_or_on_another_interpreter(tmp_path, worker):
    with SidecarProcess({**CONFIG, "worker": worker}, workdir=str(tmp_path)) as proc:
        client = proc.client()
        kill_member(proc)
        proc.wait_full_strength(1)
        assert client.execute("1+1").value == 2
        assert template(proc) == {"state": "off"}
        assert {w["spawned"] for w in proc.pool()["workers"]} == {"plain"}


def test_a_preload_that_starts_threads_declines_the_template(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "threaded.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), "
        "daemon=True).start()\n")
    config = {**CONFIG, "worker": {"paths": [str(scripts)], "preload": ["threaded"],
                                   "reload": False}}
    with SidecarProcess(config, workdir=str(tmp_path / "sidecar")) as proc:
        wait_until(lambda: template(proc)["state"] == "declined", 20)
        assert "threads" in template(proc)["reason"]
        kill_member(proc)
        proc.wait_full_strength(1)
        assert proc.client().execute("1+1").value == 2
        assert {w["spawned"] for w in proc.pool()["workers"]} == {"plain"}
        assert "the worker template is not used" in proc.log()
