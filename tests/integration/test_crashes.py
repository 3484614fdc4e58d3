"""Covers: sidecar.pool.local, sidecar.pool.lifecycle, sidecar.worker.main, sidecar.process.spawn.

What user code can do to a worker, as a table (loky's crash matrix): every row must end in the
expected error, and the sidecar must still serve a normal call and return to full strength."""

import os
import signal
import threading

import pytest

from bridge.client import CallTimeout, PythonError, WorkerCrashed
from sidecar.testing import wait_until

CRASHES = [
    # (id, code, timeout, expected exception, fragment of the message or None)
    ("sigkill-self", "import os; os.kill(os.getpid(), 9)", None, WorkerCrashed, "signal 9"),
    ("os-exit", "import os; os._exit(3)", None, WorkerCrashed, "exit code 3"),
    ("segfault", "import ctypes; ctypes.string_at(0)", None, WorkerCrashed, "SIGSEGV"),
    ("abort", "import os; os.abort()", None, WorkerCrashed, "SIGABRT"),
    ("close-all-fds", "import os; os.closerange(3, 4096); 1", None, WorkerCrashed, None),
    ("busy-loop", "while True: pass", 0.5, CallTimeout, "timeout of 0.5s"),
    ("sleep", "import time; time.sleep(60)", 0.5, CallTimeout, "timeout of 0.5s"),
    ("ignores-sigterm", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
     "time.sleep(60)", 0.5, CallTimeout, "was stopped"),
    ("recursion", "def f(): return f()\nf()", None, PythonError, "recursion"),
]


@pytest.mark.parametrize("code, timeout, exc_type, fragment",
                         [c[1:] for c in CRASHES], ids=[c[0] for c in CRASHES])
def test_crash_matrix(sidecar, client, code, timeout, exc_type, fragment):
    with pytest.raises(exc_type) as info:
        client.execute(code, timeout=timeout)
    if fragment:
        assert fragment in str(info.value)
    assert client.execute("1+1").value == 2
    sidecar.wait_full_strength(2)


@pytest.mark.parametrize("code, value", [
    ("import os; os.write(1, b'junk to fd 1' * 1000); 8", 8),
    ("import os; os.close(1); print('lost'); 9", 9),
    ("import os; os.close(0); os.close(2); 10", 10),
    ("import sys; sys.stdout.close(); 11", 11),
    ("import os\npid = os.fork()\nif pid == 0:\n    pass\nelse:\n    os.waitpid(pid, 0)\n12", 12),
    ("import subprocess, sys; subprocess.run([sys.executable, '-c', 'print(1)']).returncode", 0),
])
def test_user_code_abusing_descriptors_or_forking_does_not_break_the_protocol(client, code,
                                                                             value):
    assert client.execute(code).value == value
    for _ in range(6):  # every worker still speaks the protocol
        assert client.execute("1+1").value == 2


def test_sigkill_mid_call_fails_only_that_call(sidecar, tmp_path):
    client = sidecar.client(timeout=20.0)
    pid_file = tmp_path / "pid"
    outcome = {}

    def victim():
        try:
            client.execute(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))"
                           "\ntime.sleep(30)")
        except Exception as exc:  # recorded and asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=victim)
    thread.start()
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 10))
    # While the victim runs, the other worker serves concurrent calls.
    other = sidecar.client(timeout=10.0)
    assert [other.call("operator:mul", i, 2) for i in range(20)] == [i * 2 for i in range(20)]
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    assert not thread.is_alive()
    err = outcome["error"]
    assert isinstance(err, WorkerCrashed)
    assert err.details.get("signal") == 9 and "signal 9" in str(err)
    pool = sidecar.wait_full_strength(2)
    assert pid not in [w["pid"] for w in pool["workers"]]
    assert client.execute("1+1").value == 2


def test_timeout_kills_and_replaces_the_worker(sidecar, client):
    sidecar.wait_full_strength(2)
    wait_until(lambda: all(w["state"] != "stopping" for w in sidecar.pool()["workers"]), 10)
    before = {w["pid"] for w in sidecar.pool()["workers"]}
    with pytest.raises(CallTimeout):
        client.execute("import time; time.sleep(30)", timeout=0.3)
    pool = sidecar.wait_full_strength(2)
    after = {w["pid"] for w in pool["workers"] if w["state"] != "stopping"}
    assert len(before - after) == 1  # exactly the hung worker was replaced
    assert pool["errors"].get("timeout", 0) >= 1
