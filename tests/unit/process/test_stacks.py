"""Covers: sidecar.process.stacks.

The folder of stack dumps: one per sidecar, private, removed with it; a dead sidecar's is
cleaned at the next start (this pid's too: a
leftover of an earlier process with it), a running one's is left.
"""

from __future__ import annotations

import os
import stat

from sidecar.process import stacks


def test_created_private_and_removed(tmp_path):
    root = stacks.create_stack_root(tmp_path)
    assert root == stacks.stack_root_for(tmp_path) and root.is_dir()
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0
    (root / "worker-1").write_text("stack")
    stacks.remove_stack_root(root)
    assert not root.exists()


def test_a_dead_sidecars_folder_is_cleaned_and_a_live_ones_kept(tmp_path):
    dead = stacks.stack_root_for(tmp_path, 2**22 + 12345)  # above pid_max's default: not alive
    dead.mkdir()
    live = stacks.stack_root_for(tmp_path, os.getppid())  # running, started before
    live.mkdir()
    removed = stacks.remove_stale_stack_folders(tmp_path)
    assert dead in removed and not dead.exists() and live.exists()
