"""Covers: sidecar.worker.main, sidecar.platform.memtune.

A call that imports numpy/pandas for the first time keeps its worker: the numeric libraries'
thread pools are one thread each in workers (``sidecar.process.spawn.LIBRARY_THREADS``), so the
import leaves no thread behind and the worker is not recycled after every such call. A pool size set
in
``python3.worker.env`` is the user's."""


import pandas  # noqa: F401  (the test extra has it: missing, this fails, not skips)

from sidecar.testing import SidecarProcess

PID_AND_SUM = "import os, pandas; (os.getpid(), int(pandas.Series([1, 2, 3]).sum()))"


def test_importing_pandas_in_a_call_keeps_the_worker(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "max-size": 1,
                                  "spares": 0}, "scaling": {"enabled": False}},
                        workdir=str(tmp_path), ready_workers=1) as proc:
        client = proc.client(timeout=60)
        first = client.execute(PID_AND_SUM).value
        second = client.execute(PID_AND_SUM).value
        assert first == second  # same worker, and the sum: (pid, 6) both times
        assert proc.pool()["counters"].get("left_behind", 0) == 0
        assert client.execute("import os; os.environ['OPENBLAS_NUM_THREADS']").value == "1"


def test_a_configured_pool_size_is_kept(tmp_path):
    with SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                         "worker": {"env": {"OMP_NUM_THREADS": "4"}}},
                        workdir=str(tmp_path), ready_workers=1) as proc:
        assert proc.client(timeout=30).execute(
            "import os; os.environ['OMP_NUM_THREADS']").value == "4"
