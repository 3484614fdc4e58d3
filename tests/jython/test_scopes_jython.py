"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/gatewayroute,
    ignition-scripts/ignition/script-python/py3sidecar/endpoints.

Designer / Script Console / Vision scope under real Jython: python3.* through the shipped
gateway message handler (system.util.sendRequest test double), what the sidecar grants that
route (python3.access.routed: execute refused as python3.Forbidden, an allow-listed call
served, a client's own mark or token changing nothing), and the 8.3 timer resource."""
from __future__ import annotations

import json

import pytest

from sidecar.deploy.gateway_project import write_gateway_project
from sidecar.testing import PROJECT_ROOT, SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_scopes.py"


# A module of the plant's own, on the workers' path: what the gateway route is granted, with
# two standard ones (python3.access.routed); execute and diag stay off for the route.
PLANTCALC = """
def double_and_greet(x):
    print("hi")
    return x * 2


def divide(a, b):
    return a / b
"""
ROUTE_GRANTS = ["plantcalc:*", "statistics:mean", "operator:*", "time:sleep"]


@pytest.fixture(scope="module")
def scopes_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("jy_scopes")
    (work / "lib").mkdir()
    (work / "lib" / "plantcalc.py").write_text(PLANTCALC)
    sidecar = SidecarProcess({"pool": {"initial-size": 2, "spares": 0},
                              "worker": {"kill-grace": "200ms", "paths": [str(work / "lib")]},
                              "scaling": {"enabled": False},
                              "access": {"routed": {"allow-targets": ROUTE_GRANTS}}},
                             workdir=str(work), py4j_port=0)
    sidecar.start()
    # GATEWAY_PROJECT None: these cases send to the running project ('plant'), which holds the
    # handler; the runnable py3sidecar-gateway project is test_gateway_project_jython's.
    settings = {"CONNECTION_FILE": str(sidecar.connection_file), "CONNECT_TIMEOUT_MS": 1000,
                "GATEWAY_PROJECT": None}
    scripts = PROJECT_ROOT / "ignition-scripts"
    events = write_gateway_project(tmp_path_factory.mktemp("gateway_project") / "p")
    env = {"PY3_SETTINGS": json.dumps(settings),
           "PY3_GATEWAY_EVENTS": str(scripts / "gateway-events"),
           "PY3_TIMER_RESOURCE": str(events / "ignition" / "timer" / "py3sidecar-healthpoll")}
    try:
        return jvm.run_cases([CASES], env, timeout=120)
    finally:
        sidecar.stop()


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_scopes(scopes_run, name):
    jvm.assert_case_passed(scopes_run, "cases_scopes", name)
