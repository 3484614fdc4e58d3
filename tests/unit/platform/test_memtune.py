"""Covers: sidecar.platform.memtune.

glibc's malloc tuning is applied unless the environment says no.
"""

from __future__ import annotations

import os
import subprocess
import sys


def tuned(env_value: str | None) -> str:
    env = {} if env_value is None else {"PY3SIDECAR_MALLOC_TUNING": env_value}
    code = "from sidecar.platform import memtune; print(memtune.keep_large_buffers())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True,
                          env={**os.environ, **env}).stdout.strip()


def test_applied_by_default_on_glibc_and_not_when_turned_off():
    assert tuned(None) == "True"
    assert tuned("0") == "False"
