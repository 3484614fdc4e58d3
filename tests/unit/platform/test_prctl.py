"""Covers: sidecar.platform.prctl, sidecar.process.confinement.

The process's ties through the seam, each in a child process: a parent-death signal fires
when the parent ends, a subreaper adopts an orphan, and capability masks are read.
"""

from __future__ import annotations

import subprocess
import sys

from sidecar.platform import prctl

CHILD = """
import os, signal, sys, time
from sidecar.platform import prctl
r, w = os.pipe()
if os.fork() == 0:               # the middle process
    if os.fork() == 0:           # the grandchild: dies with the middle one
        assert prctl.set_parent_death_signal(signal.SIGKILL) == 0
        os.write(w, b"armed")
        time.sleep(30)
        os._exit(3)
    time.sleep(0.2)
    os._exit(0)
os.close(w)
print(os.read(r, 5).decode())
"""

SUBREAPER = """
import os, time
from sidecar.platform import prctl, procfs
assert prctl.become_subreaper()
if os.fork() == 0:
    if os.fork() == 0:
        time.sleep(5)
        os._exit(0)
    os._exit(0)
os.wait()
deadline = time.monotonic() + 5
while not procfs.live_children() and time.monotonic() < deadline:
    time.sleep(0.01)
orphans = procfs.live_children()
for pid in orphans:
    os.kill(pid, 9)
print(len(orphans))
"""


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


def test_the_parent_death_signal_is_armed():
    assert run(CHILD) == "armed"


def test_a_subreaper_adopts_its_orphaned_grandchild():
    assert run(SUBREAPER) == "1"


def test_capability_masks_are_read():
    masks = prctl.capability_masks()
    assert {"CapInh", "CapPrm", "CapEff"} <= set(masks)
    assert all(isinstance(v, int) for v in masks.values())
