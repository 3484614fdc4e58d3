"""Covers: sidecar.pool.local, sidecar.pool.lifecycle, sidecar.pool.call, sidecar.worker.main.

The worker dies (what) at each point of a call's life (where): loky's crash matrix, two axes.

Every cell names the kind the caller gets (the table in docs/architecture.md, "Crash matrix"),
and after every cell the next call succeeds on a pool back at full strength. "run" is the
user's own code; the other points are reached through the worker's test hooks
(``sidecar.worker.testhooks``, armed only here via ``PY3SIDECAR_TEST_HOOK_DIR``): the test drops the
crash code in ``<point>.py``, one worker claims it at that point and runs it once.
"""

import pytest

from bridge.client import PythonError, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

# what -> the code that kills (or breaks) the worker, and a fragment of the crashed message.
WHAT = {
    "sigkill": ("import os; os.kill(os.getpid(), 9)", "signal 9"),
    "sigsegv": ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "SIGSEGV"),
    "os_exit": ("import os; os._exit(3)", "exit code 3"),
    "segfault": ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
    # A real address-space limit just above what the worker maps, then a large allocation.
    "memory": ("import os, resource\n"
               "vm = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
               "resource.setrlimit(resource.RLIMIT_AS, (vm + (32 << 20), resource.RLIM_INFINITY))\n"
               "hog = bytearray(1 << 30)", "exit code 1"),
    "close_fds": ("import os; os.closerange(3, 4096)", None),
    # The worker forks, then exits; its child lives on holding the worker's pipes.
    "fork_exit": ("import os, time\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)\n"
                  "os._exit(5)", "exit code 5"),
}
WHERE = ["decode", "run", "encode", "flush", "idle"]
CRASHED, NONE = "crashed", None
# The documented kind per cell; unlisted cells are CRASHED ("idle": NONE, nobody's call fails).
EXPECTED = {("memory", "run"): "user", ("memory", "encode"): "user"}


def expected(what: str, where: str) -> str | None:
    if where == "idle":
        return NONE
    return EXPECTED.get((what, where), CRASHED)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    hooks = tmp_path_factory.mktemp("hooks")
    # No watchdog probes: a ping passes the decode point too and would claim its hook.
    proc = SidecarProcess({"pool": {"initial-size": 2, "min-size": 1, "max-size": 2, "spares": 1,
                                    "max-restarts": 1000},
                           "worker": {"env": {"PY3SIDECAR_TEST_HOOK_DIR": str(hooks)},
                                      "kill-grace": "200ms"},
                           "health": {"enabled": False},
                           "circuit-breaker": {"enabled": False},
                           # the cells crash the same requests on purpose, again and again
                           "quarantine": {"enabled": False},
                           "scaling": {"enabled": False}},
                          workdir=str(tmp_path_factory.mktemp("matrix")))
    proc.start()
    proc.wait_full_strength(2)
    yield proc, hooks
    proc.stop()


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("what", list(WHAT))
def test_crash_cell(matrix, what, where):
    sidecar, hooks = matrix
    code, fragment = WHAT[what]
    client = sidecar.client(timeout=15.0)
    kind = expected(what, where)
    if where == "run":
        request = code + "\n'survived'"
    else:
        (hooks / f"{where}.py").write_text(code)
        request = "'survived'"
    if kind is NONE:
        assert client.execute(request).value == "survived"
        wait_until(lambda: not (hooks / f"{where}.py").exists(), 10, message="hook claimed")
    elif kind == CRASHED:
        with pytest.raises(WorkerCrashed) as info:
            client.execute(request)
        if fragment:
            assert fragment in str(info.value)
    else:
        with pytest.raises(PythonError) as info:
            client.execute(request)
        assert info.value.kind == kind and info.value.remote_type == "MemoryError"
    assert not (hooks / f"{where}.py").exists(), "the hook was never reached"
    # The next call succeeds, and the pool is back at full strength.
    assert client.execute("6 * 7").value == 42
    sidecar.wait_full_strength(2)
