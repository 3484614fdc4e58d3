"""Covers: sidecar.process.placement.

python3.worker.cpu-affinity as taskset writes it: lists and ranges, refusals naming the key,
and pinning a real child process to one CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sidecar.process.placement import parse_cpus


def test_lists_and_ranges():
    assert parse_cpus("0-1", "k") == [0, 1] and parse_cpus("1,0,0", "k") == [0, 1]
    assert parse_cpus("", "k") == [] and parse_cpus(" 1 ", "k") == [1]


@pytest.mark.parametrize("bad", ["x", "1-0", "-1", "1-x", "4096"])
def test_bad_values_name_the_key(bad):
    with pytest.raises(ValueError, match="python3.worker.cpu-affinity"):
        parse_cpus(bad, "python3.worker.cpu-affinity")


def test_a_process_is_pinned_with_its_threads():
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = ("import os, threading\nfrom sidecar.process import placement\n"
            "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
            f"placement.pin_process([{cpu}])\nprint(sorted(os.sched_getaffinity(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.strip()
    assert out == f"[{cpu}]"
