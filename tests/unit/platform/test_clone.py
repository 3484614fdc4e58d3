"""Covers: sidecar.platform.clone.

The template's fork: here (CPython on x86_64 or aarch64) it is supported, and the child it
makes is the caller's parent's child, not the caller's.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from sidecar.platform import clone

CHILD = """
import os, sys, time
from sidecar.platform import clone
r, w = os.pipe()
pid = clone.fork_into_parent()
if pid == 0:
    os.write(w, str(os.getppid()).encode())
    os._exit(0)
print(os.read(r, 20).decode(), os.getppid(), pid)
"""


def test_supported_here_with_the_reason_otherwise():
    if platform.machine() in clone.SYS_CLONE:
        assert clone.clone_supported() == ""
    else:
        assert platform.machine() in clone.clone_supported()


def test_the_child_is_the_callers_parents_child():
    if clone.clone_supported():
        return
    child_parent, our_parent, pid = run_child().split()
    assert child_parent == our_parent  # CLONE_PARENT: a sibling of the caller
    assert int(pid) > 0
    # The sibling is this process's child: reap it (a zombie left here is waited on by whoever
    # runs the tests, e.g. mutmut's os.wait(), which takes it for a worker of its own).
    assert os.waitpid(int(pid), 0)[0] == int(pid)


def run_child() -> str:
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=30, check=True)
    return proc.stdout.strip()
