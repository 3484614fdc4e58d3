"""The sidecar's stack folder: where its workers' stack dumps go, and what a dead sidecar left.

Owns: the folder ``stacks-<pid>`` next to the connection file (inside the owner-only runtime
folder), creating it at start, removing it at stop, and removing those of sidecars that are no
longer running (a SIGKILLed sidecar cannot clean up after itself). Must not touch: the files'
contents (``sidecar.process.spawn`` writes and reads the dumps), the connection file
(``bridge.connection``).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from bridge.connection import written_by_running_process

log = logging.getLogger("py3sidecar.stacks")

PREFIX = "stacks-"


def stack_root_for(folder: Path, pid: int | None = None) -> Path:
    return folder / f"{PREFIX}{os.getpid() if pid is None else pid}"


def remove_stale_stack_folders(folder: Path) -> list[Path]:
    """Removes every ``stacks-<pid>`` in ``folder`` whose sidecar is not running."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid_text = entry.name[len(PREFIX):]
        if not entry.name.startswith(PREFIX) or not pid_text.isdigit() or not entry.is_dir():
            continue
        try:
            written_at = entry.stat().st_mtime
        except OSError:
            continue
        if written_by_running_process(int(pid_text), written_at):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
        log.info("removed the stack folder %s left by sidecar pid %s, which is not running",
                 entry, pid_text)
    return removed


def create_stack_root(folder: Path) -> Path:
    """This sidecar's folder (owner-only); each pool makes its own folder inside."""
    root = stack_root_for(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def remove_stack_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
