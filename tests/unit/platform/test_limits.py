"""Covers: sidecar.platform.limits, sidecar.worker.isolation.

The resource limits the seam offers are the kernel's own (no wrapper on the per-call path),
every RLIMIT_* is named, and a limit set in a child process holds there.
"""

from __future__ import annotations

import resource
import subprocess
import sys

from sidecar.platform import limits
from sidecar.worker import isolation


def test_the_functions_are_the_kernels_own_not_wrappers():
    assert limits.setrlimit is resource.setrlimit and limits.getrlimit is resource.getrlimit
    assert limits.LIMITS["RLIMIT_CPU"] == resource.RLIMIT_CPU
    assert {"RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_CPU"} <= set(limits.LIMITS)


def test_a_lowered_soft_limit_holds_in_the_process_that_set_it():
    code = ("from sidecar.platform import limits\n"
            "soft, hard = limits.getrlimit(limits.RLIMIT_NOFILE)\n"
            "limits.setrlimit(limits.RLIMIT_NOFILE, (64, hard))\n"
            "print(limits.getrlimit(limits.RLIMIT_NOFILE)[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == "64"


def test_the_baseline_puts_a_changed_limit_back():
    code = ("from sidecar.worker import isolation\n"
            "from sidecar.platform import limits\n"
            "b = isolation.Baseline()\n"
            "soft, hard = limits.getrlimit(limits.RLIMIT_NOFILE)\n"
            "limits.setrlimit(limits.RLIMIT_NOFILE, (soft - 1, hard))\n"
            "print(b.restore_limits(), limits.getrlimit(limits.RLIMIT_NOFILE)[0] == soft)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == "[] True"
    assert isolation.LIMITS is limits.LIMITS
