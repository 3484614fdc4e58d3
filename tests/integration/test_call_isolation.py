"""Covers: sidecar.worker.main, sidecar.worker.isolation, sidecar.pool.local.

A call leaves nothing behind for the next caller.

A warm worker serves call after call. Whatever one call leaves running (threads, children), or
changes (resource limits), must never reach a later, unrelated call: limits are restored before
every call, and a worker that was left threads or children is recycled gracefully after the
call. Real sidecars, real workers; every wait has a deadline.
"""

import os
import textwrap

import pytest

from sidecar.testing import SidecarProcess, wait_until

# A thread that prints into whatever ``sys.stdout`` is current, forever.
PRINTER = textwrap.dedent("""
    import threading, time, sys
    def chatter():
        while True:
            print("LEAK from an earlier call")
            time.sleep(0.002)
    threading.Thread(target=chatter, daemon=True).start()
    time.sleep(0.01)
    'started'
""")

# A thread that finds the worker's reply writer through gc and answers later calls itself.
FORGER = textwrap.dedent("""
    import gc, sys, threading, time
    worker = next(o for o in gc.get_objects()
                  if type(o).__name__ == 'Worker' and hasattr(o, 'send_reply'))
    def forge():
        seen = None
        while True:
            current = sys.stdout
            if type(current).__name__ == 'BoundedWriter' and current is not seen:
                seen = current
                worker.send_reply({'ok': True, 'ms': 0.0, 'cpu': 0.0, 'value': 'FORGED',
                                   'stdout': '', 'stderr': ''})
            time.sleep(0.001)
    threading.Thread(target=forge, daemon=True).start()
    'armed'
""")

# Worse: a thread that answers its own call at once (so the worker looks free while the call's
# main code still runs), then reads the next callers' requests from the worker's pipe itself.
THIEF = textwrap.dedent("""
    import gc, threading, time
    from sidecar.channel import read_frame
    worker = next(o for o in gc.get_objects()
                  if type(o).__name__ == 'Worker' and hasattr(o, 'send_reply'))
    def steal():
        worker.send_reply({'ok': True, 'ms': 0.0, 'cpu': 0.0, 'value': 'FORGED',
                           'stdout': '', 'stderr': ''})
        while True:
            read_frame(worker.in_fd, 1 << 20)
            worker.send_reply({'ok': True, 'ms': 0.0, 'cpu': 0.0, 'value': 'FORGED',
                               'stdout': '', 'stderr': ''})
    threading.Thread(target=steal, daemon=True).start()
    time.sleep(1.0)
""")

LATER = "import time, os; time.sleep(0.03); print('mine'); os.getpid()"


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    proc = SidecarProcess({"pool": {"initial-size": 2, "min-size": 1, "max-size": 2, "spares": 1},
                           "circuit-breaker": {"enabled": False},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("isolation")))
    proc.start()
    proc.wait_full_strength(2)
    yield proc
    proc.stop()


def worker_pids(sidecar: SidecarProcess) -> set[int]:
    return {w["pid"] for w in sidecar.pool()["workers"] if w["state"] != "stopping"}


def assert_recycled(sidecar: SidecarProcess, pid: int) -> None:
    wait_until(lambda: pid not in worker_pids(sidecar), 10,
               message=f"worker pid {pid} recycled")
    sidecar.wait_full_strength(2)


def test_a_thread_left_printing_never_reaches_later_callers_stdout(isolated):
    client = isolated.client()
    first = client.execute(PRINTER + "\nimport os; os.getpid()")
    later = [client.execute(LATER) for _ in range(12)]
    leaked = [r for r in later if "LEAK" in r.stdout]
    assert not leaked, f"{len(leaked)} of 12 later calls got an earlier call's output"
    assert all(r.stdout == "mine\n" for r in later)
    assert first.value not in {r.value for r in later}, "the worker was not recycled"
    assert_recycled(isolated, first.value)


def test_a_thread_that_forges_replies_through_gc_answers_nobody(isolated):
    client = isolated.client()
    armed = client.execute(FORGER + "\nimport os; os.getpid()")
    values = [client.execute(LATER).value for _ in range(12)]
    assert "FORGED" not in values
    assert armed.value not in values
    assert_recycled(isolated, armed.value)


def test_a_thread_that_answers_its_own_call_early_never_gets_another_request(isolated):
    thief = isolated.client()
    assert thief.execute(THIEF).value == "FORGED"  # its own call: the caller's own code
    others = isolated.client()
    values = [others.execute(LATER).value for _ in range(12)]
    assert "FORGED" not in values
    isolated.wait_full_strength(2)


@pytest.mark.parametrize("limit, setter, later, expect", [
    # A per-process CPU limit just above what the worker used: the next CPU-heavy call on the
    # same worker would die of SIGXCPU.
    ("RLIMIT_CPU",
     "used = int(time.process_time()); resource.setrlimit(resource.RLIMIT_CPU, (used + 1, "
     "resource.RLIM_INFINITY))",
     "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.2: pass\n'done'",
     "done"),
    # A tiny descriptor limit: the next call could not even open a file.
    ("RLIMIT_NOFILE", "resource.setrlimit(resource.RLIMIT_NOFILE, (12, "
     "resource.getrlimit(resource.RLIMIT_NOFILE)[1]))",
     "fs = [open('/dev/null') for _ in range(40)]\nlen(fs)", 40),
])
def test_a_resource_limit_set_by_a_call_is_reset_before_the_next(isolated, limit, setter,
                                                                 later, expect):
    client = isolated.client(timeout=20.0)
    probe = f"import resource, os; (resource.getrlimit(resource.{limit}), os.getpid())"
    before, pid = client.execute(probe).value
    changed = client.execute(f"import resource, time, os\n{setter}\nos.getpid()")
    assert changed.value == pid  # same warm worker (the last idle one is reused first)
    after, pid_after = client.execute(probe).value
    assert pid_after == pid, "the limit should be reset in place, not by recycling"
    assert after == before
    assert client.execute(later).value == expect


def test_children_left_running_recycle_the_worker_and_die_with_it(isolated):
    client = isolated.client()
    pid, child = client.execute(
        "import subprocess, os\n"
        "p = subprocess.Popen(['sleep', '60'])\n"
        "(os.getpid(), p.pid)").value
    assert_recycled(isolated, pid)
    wait_until(lambda: not os.path.exists(f"/proc/{child}"), 10,
               message=f"the call's child {child} killed with its worker")


def test_exited_children_are_reaped_after_the_call_and_the_worker_stays(isolated):
    client = isolated.client()
    pid, zombies = client.execute(textwrap.dedent("""
        import os, time
        kids = []
        for _ in range(5):
            k = os.fork()
            if k == 0:
                os._exit(0)
            kids.append(k)
        def state(k):
            with open(f'/proc/{k}/stat') as f:
                return f.read().rsplit(')', 1)[1].split()[0]
        deadline = time.monotonic() + 5
        while any(state(k) != 'Z' for k in kids) and time.monotonic() < deadline:
            time.sleep(0.001)
        (os.getpid(), kids)
    """)).value
    wait_until(lambda: not any(os.path.exists(f"/proc/{k}") for k in zombies), 5,
               message="the call's exited children reaped")
    assert client.execute("import os; os.getpid()").value == pid  # not recycled for zombies


def test_a_daemonized_grandchild_is_seen_and_ended_with_the_worker(isolated):
    client = isolated.client()
    pid, grandchild = client.execute(textwrap.dedent("""
        import os
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # the classic daemon: fork, setsid, fork, parent exits
            os.setsid()
            if os.fork() == 0:
                os.write(w, str(os.getpid()).encode())
                os.close(w)
                import time
                time.sleep(60)
            os._exit(0)
        os.waitpid(child, 0)
        os.close(w)
        (os.getpid(), int(os.read(r, 32)))
    """)).value
    assert_recycled(isolated, pid)
    wait_until(lambda: not os.path.exists(f"/proc/{grandchild}"), 10,
               message=f"the daemonized grandchild {grandchild} ended with its worker")


def test_a_signal_handler_and_timer_set_by_a_call_never_fire_in_the_next(isolated):
    client = isolated.client()
    pid = client.execute(
        "import signal, os\n"
        "signal.signal(signal.SIGALRM, lambda *a: print('ALARM from an earlier call'))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)\n"
        "os.getpid()").value
    later = [client.execute(LATER) for _ in range(5)]
    assert [r.stdout for r in later] == ["mine\n"] * 5
    assert {r.value for r in later} == {pid}  # put back in place: no recycling needed


def test_without_a_warm_spare_the_tainted_worker_waits_for_its_replacement(tmp_path_factory):
    """No spare to promote: a new worker is started, and until it is ready the worker with the
    forger in it takes no call (the others are served by the pool's other member, or wait)."""
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                       "spares": 0},
                              "circuit-breaker": {"enabled": False},
                              "scaling": {"enabled": False}},
                             workdir=str(tmp_path_factory.mktemp("nospare"))).start()
    try:
        client = sidecar.client()
        armed = client.execute(FORGER + "\nimport os; os.getpid()").value
        later = [client.execute(LATER).value for _ in range(6)]
        assert "FORGED" not in later and armed not in later
        assert len(set(later)) == 1  # one replacement serves them all
        pool = sidecar.pool()
        assert pool["counters"]["recycled"] == 1 and pool["counters"]["left_behind"] == 1
    finally:
        sidecar.stop()
