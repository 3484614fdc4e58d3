"""Covers: sidecar.deploy.gateway_project,
    ignition-scripts/ignition/script-python/py3sidecar/gatewayroute,
    ignition-scripts/ignition/script-python/py3sidecar/healthpoll,
    ignition-scripts/ignition/script-python/py3sidecar/selftest.

The bundle's runnable project py3sidecar-gateway under real Jython: the route answers from
it, the health poll runs once with the timer in two projects, python3.selfTest() (a JVM without
jeromq.jar: selfTest must name it), the site settings file."""
from __future__ import annotations

import json

import pytest

from sidecar.deploy.gateway_project import write_gateway_project
from sidecar.testing import SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_gateway_project.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    project = write_gateway_project(tmp_path_factory.mktemp("gw") / "py3sidecar-gateway")
    # The route's call is allow-listed (python3.access.routed), as a site would for its own.
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False},
                              "access": {"routed": {"allow-targets": ["operator:add"]}}},
                             workdir=str(tmp_path_factory.mktemp("jy_gw")), py4j_port=0)
    sidecar.start()
    settings = {"CONNECTION_FILE": str(sidecar.connection_file), "CONNECT_TIMEOUT_MS": 1000}
    jars = [j for j in jvm.gateway_jars() if "jeromq" not in j]
    try:
        return jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings),
                                       "PY3_GATEWAY_PROJECT_DIR": str(project)},
                             timeout=120, jars=jars)
    finally:
        sidecar.stop()


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_gateway_project(run, name):
    jvm.assert_case_passed(run, "cases_gateway_project", name)
