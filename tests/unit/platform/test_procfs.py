"""Covers: sidecar.platform.procfs.

What /proc says of a process: threads and children as the sidecar reads them at every reply,
from a kept-open file that stays bound to its process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from sidecar.platform import procfs


def test_num_threads_reads_field_20_and_refuses_garbage():
    stat = b"42 (a name) with) spaces) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 7 0"
    assert procfs.num_threads(stat) == 7
    assert procfs.num_threads(b"garbage") == -1 and procfs.num_threads(None) == -1


def test_this_processs_threads_are_counted():
    before = procfs.thread_count()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,))
    thread.start()
    try:
        assert procfs.thread_count() == before + 1
        assert procfs.ProcFile.count_threads("/proc/self/stat") == before + 1
    finally:
        stop.set()
        thread.join(10)


def test_the_outside_view_sees_a_child_and_a_gone_process():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in procfs.live_children()
        view = procfs.OutsideView(os.getpid())
        threads, children = view.read()
        view.close()
        assert threads >= 1 and children >= 1
        assert procfs.outside_view(os.getpid())[1] >= 1
    finally:
        child.stdin.close()
        child.wait(10)
    gone = procfs.OutsideView(child.pid)
    assert gone.read() == (-1, -1)  # reaped: nothing to read, said so
    gone.close()


def test_groups_are_the_supplementary_groups_of_a_live_process():
    from sidecar.platform.procfs import groups

    assert groups(os.getpid()) == frozenset(os.getgroups())
    assert groups(2 ** 22 + 12345) == frozenset()  # no such process
