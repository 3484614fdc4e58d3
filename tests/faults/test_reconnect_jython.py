"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar, bridge.connection.

The python3 library under real Jython 2.7 reconnects by itself after a sidecar restart.

With fixed ports (no connection file), the sidecar is SIGKILLed or stopped and started again
on the same ports while gateway threads hold connections to it: each thread's next call must be
answered (not fail `Unavailable` once), and run exactly once (a ledger file written by the
worker counts executions). Cases: tests/jython/jy/cases_reconnect.py, both transports.
"""
from __future__ import annotations

import collections
import json
from typing import Any

import pytest

from sidecar.testing import SidecarProcess
from tests.jython import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_reconnect.py"
CONFIG = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 0},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}


@pytest.fixture(scope="module")
def reconnect_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("jy_reconnect")
    ledger = workdir / "ledger.txt"
    ledger.touch()
    sidecar = SidecarProcess(CONFIG, workdir=str(workdir))  # fixed ports: free_port() once
    sidecar.start()

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "info":
            return {"py4j_port": sidecar.py4j_port, "endpoint": sidecar.endpoint,
                    "token_file": str(sidecar.runtime_dir / "token"), "ledger": str(ledger)}
        if cmd == "restart":
            if request["how"] == "kill":
                sidecar.proc.kill()
                sidecar.proc.wait(10)
            sidecar.stop()
            sidecar.start()
            return sidecar.proc.pid
        if cmd == "ledger":
            return dict(collections.Counter(ledger.read_text().split()))
        raise ValueError(f"unknown control command {cmd!r}")

    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps({})}, timeout=120,
                                control=control)
    finally:
        sidecar.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_reconnect(reconnect_run, name):
    jvm.assert_case_passed(reconnect_run, "cases_reconnect", name)
