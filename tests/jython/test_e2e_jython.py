"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/client,
    ignition-scripts/ignition/script-python/py3sidecar/transport.

The python3 script library under real Jython 2.7 against a real sidecar with real workers.

Every Jython case runs in ONE JVM (tests/jython/jy/cases_e2e.py, through both transports); each
becomes a pytest test here. The JVM asks this side to stop/start the sidecar or force its
breaker open through CTL lines (see jvm.run_cases).
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.testing import SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_e2e.py"

USER_MODULE = '''
import datetime


def echo(value):
    return value


def describe(value):
    """The CPython type names of what arrived (datetimes: whether they are aware UTC)."""
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [describe(v) for v in value]
    if isinstance(value, datetime.datetime):
        return "datetime(UTC)" if value.utcoffset() == datetime.timedelta(0) else "datetime"
    return type(value).__name__


def scale_frame(ds, factor):
    frame = ds.to_pandas()
    frame["temp_x"] = frame["temp"] * factor
    return frame


def numpy_values():
    import numpy as np
    return {"i": np.int64(5), "f": np.float32(1.5), "arr": np.arange(3), "m": np.eye(2)}


def fail(message):
    raise ValueError(message)
'''


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    scripts = tmp_path_factory.mktemp("jy_user_scripts")
    (scripts / "jyhelpers.py").write_text(USER_MODULE)
    # Two workers, no spares, a queue of four: the overload case can fill it. Port 0 for py4j:
    # the library finds the port (and the token file) through the connection file.
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "min-size": 2, "max-size": 2,
                                       "spares": 0, "queue-size": 4},
                              "worker": {"paths": [str(scripts)], "kill-grace": "200ms"},
                              # a named pool (python3.pools) for python3.call(..., pool='side')
                              "pools": {"side": {"worker": {"env": {"POOL_ROLE": "side"}},
                                                 "pool": {"initial-size": 1, "spares": 0},
                                                 "scaling": {"enabled": False}}},
                              "scaling": {"enabled": False},
                              "health": {"enabled": False},
                              "circuit-breaker": {"failure-threshold": 1000,
                                                  "window-size": 20, "minimum-calls": 20,
                                                  "failure-rate-threshold": 1.0}},
                             workdir=str(tmp_path_factory.mktemp("jy_sidecar")), py4j_port=0)
    sidecar.start()

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "stop":
            # SIGTERM must end it (drain, exit 0) even with JVM threads connected over py4j;
            # SidecarProcess.stop kills it after 15 s otherwise.
            code = sidecar.stop()
            if code != 0:
                raise RuntimeError(f"the sidecar did not stop cleanly on SIGTERM (exit {code})")
            return code
        if cmd == "start":
            sidecar.start()
            return sidecar.connection
        if cmd == "breaker":
            return sidecar.client(timeout=5).request(
                {"op": "breaker", "command": request["command"]})["value"]["breakers"]["primary"]
        if cmd == "quarantine":
            return sidecar.client(timeout=5).quarantine(
                request["action"], request.get("fingerprint"))["cleared"]
        raise ValueError(f"unknown control command {cmd!r}")

    settings = {"CONNECTION_FILE": str(sidecar.connection_file), "CONNECT_TIMEOUT_MS": 1000}
    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings)}, timeout=150,
                                control=control)
    finally:
        results["<final-stop>"] = ("PASS" if sidecar.stop() == 0 else "FAIL", "")
    return results


def test_sidecar_stops_cleanly_after_the_jython_run(e2e_run):
    assert e2e_run["<final-stop>"][0] == "PASS", "the sidecar needed SIGKILL"


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_e2e(e2e_run, name):
    jvm.assert_case_passed(e2e_run, "cases_e2e", name)
