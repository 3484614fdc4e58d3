"""Covers: bridge.accept_guard.

The open-files limit is raised to the hard limit at start, in a process whose soft limit was
lowered first (as systemd's 1024 would be).
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import resource
from bridge import accept_guard
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
before, after = accept_guard.raise_open_files_limit()
print(before, after > 64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] == after)
"""


def test_the_soft_limit_is_raised():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert out == ["64", "True", "True"]
