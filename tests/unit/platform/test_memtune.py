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


def test_the_free_heap_kept_is_160_mib_unless_the_environment_says(monkeypatch):
    from sidecar.platform import memtune

    monkeypatch.delenv(memtune.KEEP_ENV, raising=False)
    assert memtune.trim_threshold() == 160 << 20
    monkeypatch.setenv(memtune.KEEP_ENV, "96")
    assert memtune.trim_threshold() == 96 << 20
    monkeypatch.setenv(memtune.KEEP_ENV, "0")
    assert memtune.trim_threshold() == 0


def test_a_bad_keep_value_is_named_and_serve_refuses_it(tmp_path):
    for bad in ("lots", "-5", "1.5", "5000"):
        env = {**os.environ, "PY3SIDECAR_MALLOC_KEEP_MIB": bad}
        out = subprocess.run([sys.executable, "-m", "sidecar", "serve"], capture_output=True,
                             text=True, timeout=60, env=env, cwd=str(tmp_path))
        assert out.returncode == 2, (bad, out.stderr[-500:])
        assert f"PY3SIDECAR_MALLOC_KEEP_MIB={bad!r}" in out.stderr
        assert "Traceback" not in out.stderr


def test_a_worker_given_a_bad_keep_value_says_so_and_keeps_the_default():
    # python3.worker.env may set it for the workers alone: a worker must start regardless.
    code = "from sidecar.platform import memtune; print(memtune.keep_large_buffers(strict=False))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PY3SIDECAR_MALLOC_KEEP_MIB": "lots"})
    assert out.returncode == 0 and out.stdout.strip() == "True"
    assert "PY3SIDECAR_MALLOC_KEEP_MIB='lots'" in out.stderr and "keeping 160 MiB" in out.stderr
