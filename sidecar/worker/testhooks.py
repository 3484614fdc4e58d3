"""Test hooks: crash points inside the worker that no request can reach (the crash matrix).

Inert unless the worker's environment sets ``PY3SIDECAR_TEST_HOOK_DIR`` (only
``tests/integration/test_crash_matrix.py`` does, through ``python3.worker.env``). Then, at each
named point (``decode``, ``encode``, ``flush``, ``idle``), a file ``<point>.py`` in that folder
is claimed by renaming it (so exactly one worker runs it, once) and executed.

Owns: finding, claiming and running those files. Must not touch: anything else; never imported
for its effects, and it does nothing at all when the variable is unset.
"""

from __future__ import annotations

import os

HOOK_DIR = os.environ.get("PY3SIDECAR_TEST_HOOK_DIR", "")


def at(point: str) -> None:
    """Run the test's code for ``point`` if the test left some there (test hook)."""
    if not HOOK_DIR:
        return
    path = os.path.join(HOOK_DIR, f"{point}.py")
    claimed = f"{path}.{os.getpid()}"
    try:
        os.rename(path, claimed)
    except OSError:
        return
    with open(claimed) as handle:
        code = handle.read()
    os.unlink(claimed)
    exec(compile(code, path, "exec"), {"__name__": "__py3sidecar_test_hook__"})
