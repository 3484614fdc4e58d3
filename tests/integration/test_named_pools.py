"""Covers: sidecar.routing.registry, sidecar.service.

Named pools (``python3.pools``) in a real ``py3sidecar serve``: two local pools on different
virtualenvs (one created here, with a module only it has), the primary beside them, each call
routed by its ``pool``; breakers, quarantine, health, metrics and the CLI per pool; an unknown
pool is ``bad_request`` naming the pools there are.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bridge.client import BadRequest, CircuitOpen, PythonError, WorkerCrashed
from sidecar.testing import SidecarProcess, wait_until

pytestmark = pytest.mark.timeout(180)

PROJECT_VENV = sys.prefix  # the interpreter running the tests: the project's virtualenv


def make_virtualenv(folder: Path) -> Path:
    """A new virtualenv with msgpack (all a worker needs besides this project, which the
    sidecar puts on its path) and a module ``plantmodel`` the project's own venv lacks."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(folder)], check=True, timeout=120)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "msgpack"], check=True, timeout=300)
    site = subprocess.run([str(folder / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    (Path(site) / "plantmodel.py").write_text("VERSION = '1.4-ml'\n"
                                              "def predict(x):\n    return 2 * x + 1\n")
    return folder


@pytest.fixture(scope="module")
def ml_venv(tmp_path_factory):
    return make_virtualenv(tmp_path_factory.mktemp("venvs") / "ml")


@pytest.fixture(scope="module")
def sidecar(ml_venv, tmp_path_factory):
    config = {
        "pool": {"initial-size": 1, "spares": 0},
        "pools": {
            "ml": {"worker": {"virtualenv": str(ml_venv), "preload": ["plantmodel"]},
                   "pool": {"initial-size": 1, "min-size": 1, "max-size": 2, "spares": 0},
                   "fallback": ["primary"]},
            "stats": {"worker": {"virtualenv": PROJECT_VENV, "env": {"POOL_ROLE": "stats"}},
                      "pool": {"initial-size": 1, "min-size": 1, "spares": 0}},
        },
        "circuit-breaker": {"failure-threshold": 50},
    }
    with SidecarProcess(config, workdir=str(tmp_path_factory.mktemp("sidecar"))) as proc:
        client = proc.client(timeout=30)
        wait_until(lambda: all(p["size"]["ready"] >= 1
                               for p in client.health()["pools"].values()), 60,
                   message="both named pools ready")
        yield proc


def test_each_call_runs_in_the_pool_it_names(sidecar, ml_venv):
    client = sidecar.client(timeout=30)
    prefix = "import sys; sys.prefix"
    assert client.execute(prefix, pool="ml").value == str(ml_venv)
    assert client.execute(prefix, pool="stats").value == PROJECT_VENV
    assert client.execute(prefix).value == PROJECT_VENV  # no pool: the primary
    # a module only the ml virtualenv has, preloaded there
    assert client.call("plantmodel:predict", 20, pool="ml") == 41
    assert client.execute("import plantmodel; plantmodel.VERSION", pool="ml").value == "1.4-ml"
    with pytest.raises(PythonError) as info:
        client.execute("import plantmodel", pool="stats")
    assert info.value.remote_type == "ModuleNotFoundError"
    assert client.execute("import os; os.environ.get('POOL_ROLE')", pool="stats").value == "stats"
    assert client.execute("import os; os.environ.get('POOL_ROLE')").value is None
    # and the worker that answered belongs to the pool named
    health = client.health()
    ml_pids = {w["pid"] for w in health["pools"]["ml"]["workers"]}
    assert client.execute("import os; os.getpid()", pool="ml").value in ml_pids


def test_an_unknown_pool_is_bad_request_naming_the_pools(sidecar):
    client = sidecar.client(timeout=10)
    with pytest.raises(BadRequest, match=r"no pool named 'gpu'; there are: primary, ml, stats"):
        client.execute("1", pool="gpu")
    with pytest.raises(BadRequest, match="'pool' must be the name"):
        client.request({"op": "execute", "code": "1", "pool": 7})


def test_breakers_are_per_pool_and_a_pools_fallback_names_another_pool(sidecar):
    client = sidecar.client(timeout=10)
    assert {"primary", "ml", "stats"} <= set(client.breaker()["breakers"])
    try:
        client.breaker("open", "stats")
        with pytest.raises(CircuitOpen, match="breaker close --name stats"):
            client.execute("1", pool="stats")
        assert client.execute("1+1").value == 2  # the primary is not affected
        client.breaker("open", "ml")  # ml falls back to the primary (pools.ml.fallback)
        result = client.execute("import sys; sys.prefix", pool="ml")
        assert (result.value, result.via) == (PROJECT_VENV, "primary")
    finally:
        client.breaker("close", "stats")
        client.breaker("close", "ml")
    assert client.execute("1", pool="ml").via == "ml"
    routes = client.health()["fallback"]["routes"]
    assert routes["ml"] == ["ml", "primary"] and routes["stats"] == ["stats"]


def test_a_dead_worker_is_replaced_in_its_own_pool(sidecar):
    client = sidecar.client(timeout=30)
    before = client.health()
    pid = before["pools"]["stats"]["workers"][0]["pid"]
    primary_pids = {w["pid"] for w in before["pool"]["workers"]}
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (lambda p: p["size"]["ready"] >= 1 and pid not in
                        {w["pid"] for w in p["workers"]})(client.health()["pools"]["stats"]),
               30, message="stats replaced its worker")
    after = client.health()
    assert after["pools"]["stats"]["status"] in ("HEALTHY", "DEGRADED")
    assert after["pools"]["stats"]["counters"]["crashes"] >= 1
    assert {w["pid"] for w in after["pool"]["workers"]} == primary_pids
    assert client.execute("21*2", pool="stats").value == 42


def test_quarantine_is_per_pool(sidecar):
    client = sidecar.client(timeout=30)
    poison = "import os; os._exit(3)  # poison for ml"
    for _ in range(2):
        with pytest.raises(WorkerCrashed):
            client.execute(poison, pool="ml")
    with pytest.raises(Exception, match="quarantined") as info:
        client.execute(poison, pool="ml")
    assert type(info.value).__name__ == "Quarantined"
    with pytest.raises(WorkerCrashed):  # the same code on another pool is its own request
        client.execute(poison, pool="stats")
    client.quarantine("clear")
    wait_until(lambda: client.health()["pools"]["ml"]["size"]["ready"] >= 1, 30)


def test_health_and_metrics_show_each_pool(sidecar, ml_venv):
    client = sidecar.client(timeout=10)
    health = client.health()
    ml = health["pools"]["ml"]
    assert ml["kind"] == "local" and ml["status"] in ("HEALTHY", "DEGRADED")
    assert ml["recovery"] is not None and "scaling" in ml
    assert set(health["pools"]) == {"ml", "stats"}
    client.execute("1", pool="ml")
    with urllib.request.urlopen(sidecar.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for pool in ("primary", "ml", "stats"):
        assert f'pool="{pool}"' in text, pool
    assert 'py3sidecar_breaker_state{breaker="ml",state="closed"} 1.0' in text
    assert 'py3sidecar_pool_status{pool="ml",status="' in text
    assert 'py3sidecar_pool_calls_total{outcome="ok",pool="ml"}' in text
    assert 'py3sidecar_pool_calls_total{outcome="ok",pool="primary"}' in text


def test_the_cli_takes_a_pool(sidecar, ml_venv):
    env = {**os.environ, "PY3SIDECAR_TOKEN": sidecar.token}
    out = subprocess.run([sys.executable, "-m", "sidecar", "exec", "--endpoint",
                          sidecar.endpoint, "--pool", "ml", "import sys; sys.prefix"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == str(ml_venv)
    out = subprocess.run([sys.executable, "-m", "sidecar", "call", "--endpoint",
                          sidecar.endpoint, "--pool", "ml", "plantmodel:predict", "1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == 3, out.stderr
    out = subprocess.run([sys.executable, "-m", "sidecar", "exec", "--endpoint",
                          sidecar.endpoint, "--pool", "nope", "1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "no pool named 'nope'" in out.stderr
