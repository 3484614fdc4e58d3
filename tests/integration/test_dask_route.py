"""Covers: sidecar.routing.dask_pool, sidecar.routing.registry.

A ``kind: dask`` pool in a real ``py3sidecar serve``, against a real Dask cluster on loopback
(a scheduler and worker processes): calls routed by ``pool``, the same error kinds as a local
pool, the cluster's health in ``health.pools`` and ``/metrics``, and the sidecar serving its
other pools while the scheduler is gone.
(``sidecar/routing/dask_pool.py`` alone, inside a bare loop: ``test_dask_pool.py``.)
"""

from __future__ import annotations

import os
import signal
import threading
import urllib.request

import distributed  # noqa: F401  (the test extra has it: missing, this fails)
import pytest

from bridge.client import (
    CallTimeout,
    PythonError,
    Unavailable,
    WorkerCrashed,
)
from sidecar.testing import SidecarProcess, wait_until

pytestmark = pytest.mark.timeout(180)



def sidecar_for(address: str, workdir: str, **extra) -> SidecarProcess:
    return SidecarProcess({"pool": {"initial-size": 1, "spares": 0},
                           "pools": {"cluster": {"kind": "dask", "address": address,
                                                 "connect-timeout": "3s", **extra}}},
                          workdir=workdir)


def connected(client) -> bool:
    return client.health()["pools"]["cluster"]["connected"]


def test_calls_run_on_the_cluster_with_the_same_kinds(cluster, tmp_path):
    with sidecar_for(cluster.address, str(tmp_path)) as proc:
        client = proc.client(timeout=30)
        wait_until(lambda: connected(client), 30, message="connected to the scheduler")
        result = client.execute("import os; (os.getpid(), 6 * 7)", pool="cluster")
        worker_pids = {w.pid for w in cluster.workers}
        assert result.value[1] == 42 and result.value[0] in worker_pids
        assert result.value[0] != client.execute("import os; os.getpid()").value
        assert result.via == "cluster"
        assert client.call("statistics:mean", [1, 2, 3, 6], pool="cluster") == 3
        with pytest.raises(PythonError) as info:
            client.execute("def f():\n    raise ValueError('bad reading')\nf()", pool="cluster")
        assert info.value.remote_type == "ValueError"
        assert "bad reading" in info.value.traceback and "line 2" in info.value.traceback
        with pytest.raises(CallTimeout, match="cancelled on the cluster"):
            client.execute("import time; time.sleep(30)", pool="cluster", timeout=1.0)
        assert client.execute("1+1", pool="cluster").value == 2  # the cluster serves on
        health = client.health()["pools"]["cluster"]
        assert health["kind"] == "dask" and health["status"] == "HEALTHY"
        assert health["workers"] == 2 and health["memory"] > 0
        with urllib.request.urlopen(proc.http_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        assert 'py3sidecar_dask_workers{pool="cluster"} 2.0' in text
        assert 'py3sidecar_pool_status{pool="cluster",status="HEALTHY"} 1.0' in text


def test_a_killed_dask_worker_is_crashed(solo_cluster, tmp_path):
    with sidecar_for(solo_cluster.address, str(tmp_path / "s")) as proc:
        client = proc.client(timeout=30)
        wait_until(lambda: connected(client), 30, message="connected")
        outcome: list[BaseException | object] = []
        caller = proc.client(timeout=30)
        thread = threading.Thread(target=lambda: outcome.append(_run(
            caller, "import time; time.sleep(20)")))
        thread.start()
        wait_until(lambda: client.health()["pools"]["cluster"]["tasks_running"] >= 1, 20)
        os.killpg(solo_cluster.workers[0].pid, signal.SIGKILL)
        thread.join(30)
        assert isinstance(outcome[0], WorkerCrashed), outcome
        assert client.execute("1+1").value == 2  # the primary pool never noticed


def _run(client, code):
    try:
        return client.execute(code, pool="cluster")
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_scheduler_gone_is_unavailable_and_the_other_pools_serve(solo_cluster, tmp_path):
    with sidecar_for(solo_cluster.address, str(tmp_path / "s")) as proc:
        client = proc.client(timeout=30)
        wait_until(lambda: connected(client), 30, message="connected")
        solo_cluster.close()
        wait_until(lambda: not connected(client), 30, message="disconnect noticed")
        with pytest.raises(Unavailable, match="not connected"):
            client.execute("1", pool="cluster")
        assert client.execute("1+1").value == 2
        health = client.health()["pools"]["cluster"]
        assert health["status"] == "UNHEALTHY" and "not connected" in health["status_reason"]


def test_a_scheduler_never_reached_does_not_stop_the_sidecar(tmp_path):
    from sidecar.testing import free_port

    with sidecar_for(f"tcp://127.0.0.1:{free_port()}", str(tmp_path)) as proc:
        client = proc.client(timeout=10)
        assert client.execute("1+1").value == 2
        with pytest.raises(Unavailable, match="not connected"):
            client.execute("1", pool="cluster")
