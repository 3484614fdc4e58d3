"""A fork whose child is our parent's child: how the warm template hands out workers.

Offers: ``fork_into_parent()`` (``fork()``, but the child's parent is the caller's parent, the
sidecar, so the sidecar reaps it, holds its pidfd and its ``PR_SET_PDEATHSIG`` watches the
sidecar; 0 in the child) and ``clone_supported()`` (why it cannot be done here, "" when it can).
Used by ``sidecar.process.template_server`` only, and only while that process has one thread
(the raw ``clone`` skips glibc's fork handlers).

Linux: ``syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, ...)`` through ``ctypes``, with
CPython's ``PyOS_BeforeFork``/``PyOS_AfterFork_*`` around it.
Windows: none; there is no fork. A port spawns every worker (``CreateProcess``, the pool's
plain path, as when the template is unsupported) and preloads in each.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys

CLONE_PARENT = 0x00008000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}  # flags, stack 0 (fork semantics), no tids, no tls


def clone_supported() -> str:
    """Why a template cannot fork here ("" when it can)."""
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    if platform.machine() not in SYS_CLONE:
        return f"no clone(CLONE_PARENT) call known for {platform.machine()}"
    return ""


def fork_into_parent() -> int:
    """``fork()``, but the child's parent is our parent (the sidecar). 0 in the child.

    CPython's own fork bookkeeping runs around it as in ``os.fork`` (``PyOS_BeforeFork`` and
    the after-fork hooks: the GIL, the import lock, ``os.register_at_fork`` callbacks); the GIL
    is held across the call (``PyDLL``)."""
    api = ctypes.pythonapi
    libc = ctypes.PyDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_void_p]
    api.PyOS_BeforeFork()
    pid = libc.syscall(SYS_CLONE[platform.machine()], CLONE_PARENT | signal.SIGCHLD,
                       None, None, None, None)
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    error = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(error, f"clone(CLONE_PARENT): {os.strerror(error)}")
    return pid
