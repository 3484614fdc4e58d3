"""Covers: sidecar.worker.isolation, sidecar.platform.procfs.

Between two calls, in a real process: what a call left (a thread, a child, a signal handler)
is reported or put back, and a clean call leaves nothing to report.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import signal, subprocess, sys, threading
from sidecar.worker import isolation
b = isolation.Baseline()
print(b.left_behind() == [])
stop = threading.Event()
t = threading.Thread(target=stop.wait, name="stray", daemon=True); t.start()
print(any("stray" in r for r in b.left_behind()))
stop.set(); t.join()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print(any(str(child.pid) in r for r in b.left_behind()))
child.kill(); child.wait()
signal.signal(signal.SIGUSR2, lambda *a: None)
print(b.left_behind() == [], signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL)
"""


def test_what_a_call_leaves_is_reported_or_put_back():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["True", "True", "True", "True", "True"]


QUICK = """
import os, resource, signal, sys
from sidecar.worker import isolation
b = isolation.Baseline()
def slow_path_taken():
    raise AssertionError("the long way after a call that changed nothing")
b.restore_limits = b.restore_signals = slow_path_taken
print(b.untouched(), b.left_behind() == [])
del b.restore_limits, b.restore_signals
def look(change, undo):
    change()
    seen = not b.untouched()
    undo()
    return seen
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
print(look(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard)),
           lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))))
print(look(lambda: signal.setitimer(signal.ITIMER_PROF, 50),
           lambda: signal.setitimer(signal.ITIMER_PROF, 0)))
print(look(lambda: signal.signal(signal.SIGUSR2, lambda *a: None),
           lambda: signal.signal(signal.SIGUSR2, signal.SIG_DFL)))
print(look(lambda: sys.setprofile(lambda *a: None), lambda: sys.setprofile(None)))
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie child
print(not b.untouched(), b.left_behind() == [], b.untouched())
print(b.untouched())
"""


def test_a_call_that_changed_nothing_costs_only_the_quick_look():
    """``untouched`` is the whole cost of a clean call, and it sees each kind of change."""
    out = subprocess.run([sys.executable, "-c", QUICK], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["True", "True", "True", "True", "True", "True", "True", "True", "True",
                   "True"]
