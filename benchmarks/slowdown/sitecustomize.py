"""A deliberate slowdown of the sidecar's hot path, to show the CPU guard bites
(benchmarks/test_cpu_guard.py): loaded into the sidecar through PYTHONPATH (this folder), so
the library itself carries no hook.

Inert unless PY3SIDECAR_BENCH_SLOWDOWN_US is set. Then, in ``python -m sidecar serve`` only,
``Service.dispatch`` spins that many microseconds of CPU before doing its work.

Owns: the slowdown. Must not touch: anything else; it changes no behaviour but the cost.
"""

import os
import sys

SLOWDOWN_US = float(os.environ.get("PY3SIDECAR_BENCH_SLOWDOWN_US", "0") or 0)


def _install():
    import time

    from sidecar import service

    original = service.Service.dispatch
    spin_ns = int(SLOWDOWN_US * 1000)
    clock = time.thread_time_ns

    def slow_dispatch(self, *args, **kwargs):
        end = clock() + spin_ns
        while clock() < end:
            pass
        return original(self, *args, **kwargs)

    service.Service.dispatch = slow_dispatch


_argv = getattr(sys, "orig_argv", [])
if SLOWDOWN_US > 0 and "sidecar" in _argv and "serve" in _argv:
    _install()
