"""A process's ties and privileges: dying with its parent, adopting orphans, capabilities.

Offers: ``set_parent_death_signal(signum)`` (a worker is killed when the sidecar's loop thread,
which forked it, ends), ``become_subreaper()`` (orphans of user code are re-parented to the
worker, so they are seen, reaped and killed with it), ``capability_masks()`` and
``clear_capabilities()`` (a non-root worker gives up what it inherited). The policies (what to
print, when to exit) stay with their callers, ``sidecar.process.confinement`` and
``sidecar.worker.main``.

Linux: ``prctl(PR_SET_PDEATHSIG)``, ``prctl(PR_SET_CHILD_SUBREAPER)``,
``prctl(PR_CAP_AMBIENT_CLEAR_ALL)`` and ``capset``, through ``ctypes``; ``/proc/self/status``
(``Cap*:``).
Windows: a Job Object with ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`` held by the sidecar (its
workers and everything they start end when the sidecar's handle closes, however it dies;
``AssignProcessToJobObject`` on a suspended ``CreateProcess``), the job's process list in
place of a subreaper, and a restricted token or a separate account
(``CreateProcessAsUser``, ``CreateRestrictedToken``) in place of capabilities.
"""

from __future__ import annotations

import ctypes

PR_SET_PDEATHSIG = 1
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_CHILD_SUBREAPER = 36


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(signum: int) -> int:
    """Have the kernel send ``signum`` to this process when its parent (the thread that forked
    it) ends; 0, or the errno of the failure."""
    if _libc().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        return ctypes.get_errno() or -1
    return 0


def clear_capabilities() -> int:
    """Give up every capability (ambient ones first) for good; 0, or the errno of the failure."""
    libc = _libc()
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        return ctypes.get_errno() or -1
    return 0


def capability_masks() -> dict[str, int]:
    masks = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("CapInh:", "CapPrm:", "CapEff:", "CapAmb:")):
                    name, value = line.split(":", 1)
                    masks[name] = int(value, 16)
    except OSError:
        pass
    return masks


def become_subreaper() -> bool:
    """Orphans of user code (a double fork) are re-parented to this worker instead of init, so
    they are seen as left behind, reaped when they exit, and end with the worker's group."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
