"""Covers: sidecar.worker.testhooks.

A test hook runs once, in the process that claims it, and only when a hook folder is set.
"""

from __future__ import annotations

import os
import subprocess
import sys


def run(env: dict[str, str]) -> str:
    code = ("from sidecar.worker import testhooks\n"
            "testhooks.at('idle'); testhooks.at('idle'); print('done')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True, env={**os.environ, **env}).stdout


def test_a_hook_runs_once_and_only_with_a_folder(tmp_path):
    (tmp_path / "idle.py").write_text("print('hooked')\n")
    assert run({"PY3SIDECAR_TEST_HOOK_DIR": ""}) == "done\n"
    assert (tmp_path / "idle.py").exists()
    assert run({"PY3SIDECAR_TEST_HOOK_DIR": str(tmp_path)}) == "hooked\ndone\n"
    assert not list(tmp_path.iterdir())  # claimed and removed
