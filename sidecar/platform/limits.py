"""Resource limits of the current process: CPU time, address space, every ``RLIMIT_*``.

Offers: ``getrlimit``/``setrlimit`` and the ``RLIMIT_*`` constants (the ``resource`` module's
own functions, bound here, not wrapped: the worker re-arms its CPU limit before every call),
and ``LIMITS``: every limit this platform has, by name (what a worker's baseline puts back
between calls, ``sidecar.worker.isolation``).

Linux: ``getrlimit``/``setrlimit`` (``RLIMIT_CPU``: SIGXCPU at the soft limit, SIGKILL at the
hard one; ``RLIMIT_AS``; ``/proc/self/limits`` tells "unchanged" in one read,
``sidecar.platform.procfs``).
Windows: a Job Object per worker (``SetInformationJobObject`` with
``JOBOBJECT_EXTENDED_LIMIT_INFORMATION``: ``PerProcessUserTimeLimit`` for CPU,
``ProcessMemoryLimit`` for the address space); a job's limits are the worker's: nothing to put
back.
"""

from __future__ import annotations

import resource
from resource import RLIMIT_AS, RLIMIT_CPU, RLIMIT_NOFILE, getrlimit, setrlimit

# Every RLIMIT_* this platform has, by name (RLIMIT_CPU included: the worker re-arms its
# per-call CPU limit after the baseline is put back).
LIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}

__all__ = ["LIMITS", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "getrlimit", "setrlimit"]
