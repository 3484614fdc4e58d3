"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/client,
    ignition-scripts/ignition/script-python/py3sidecar/breaker.

Failover of the python3 library between two real sidecars, under real Jython 2.7.

One JVM runs every case of tests/jython/jy/cases_failover.py against sidecar ``a`` (the local
one, found through its connection file, or by fixed ports) and ``b`` (FAILOVER_SIDECARS, by
host/port/endpoint and token file). The JVM asks this side to kill or restart ``a`` through CTL
lines (see jvm.run_cases).
"""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from sidecar.testing import SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_failover.py"
FIGURES: dict[str, Any] = {}  # measured by the cases (printed with `pytest -s`)
CONFIG = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 0,
                   "queue-size": 64},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}


@pytest.fixture(scope="module")
def failover_run(tmp_path_factory):
    # Fixed ports (free_port): a restarted `a` listens where it did, so the fixed-port settings
    # find it again; its connection file is rewritten (new pid) all the same.
    sidecars = {name: SidecarProcess(CONFIG, workdir=str(tmp_path_factory.mktemp(f"jy_fo_{name}")))
                for name in ("a", "b")}
    errors: list[BaseException] = []

    def start(sc: SidecarProcess) -> None:
        try:
            sc.start()
        except BaseException as exc:  # reported below
            errors.append(exc)

    starters = [threading.Thread(target=start, args=(sc,)) for sc in sidecars.values()]
    for t in starters:
        t.start()
    for t in starters:
        t.join(60)
    if errors:
        for sc in sidecars.values():
            sc.stop()
        raise errors[0]

    def info(sc: SidecarProcess) -> dict[str, Any]:
        return {"connection_file": str(sc.connection_file), "py4j_port": sc.py4j_port,
                "endpoint": sc.endpoint, "token_file": str(sc.runtime_dir / "token")}

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "figure":
            FIGURES[request["name"]] = request["value"]
            print(f"FIGURE {request['name']} = {request['value']}")
            return None
        if cmd == "info":
            return {name: info(sc) for name, sc in sidecars.items()}
        sc = sidecars[request.get("which", "a")]
        if cmd == "kill":
            sc.proc.kill()
            sc.proc.wait(10)
            return sc.proc.returncode
        if cmd == "start":
            sc.stop()
            sc.start()
            return info(sc)
        raise ValueError(f"unknown control command {cmd!r}")

    settings = {"CONNECTION_FILE": str(sidecars["a"].connection_file), "CONNECT_TIMEOUT_MS": 1000}
    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings)}, timeout=120,
                                control=control)
    finally:
        for sc in sidecars.values():
            sc.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_failover(failover_run, name):
    jvm.assert_case_passed(failover_run, "cases_failover", name)
