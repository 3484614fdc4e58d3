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
