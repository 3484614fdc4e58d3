"""Covers: ignition-scripts/ignition/script-python/py3sidecar/zmtp, bridge.zmq_auth.

ZeroMQ from real Jython 2.7 against sidecars that authenticate at the handshake: JeroMQ
(ZMTP/2.0) gets nothing, the library's ZMTP/3.0 PLAIN transport is served, a CURVE front is a
clear error (tests/jython/jy/cases_zmtp.py; one JVM, each case a pytest test here)."""
from __future__ import annotations

import json

import pytest

from sidecar.testing import SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_zmtp.py"
POOL = {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0}


@pytest.fixture(scope="module")
def zmtp_run(tmp_path_factory):
    plain = SidecarProcess({"pool": POOL}, workdir=str(tmp_path_factory.mktemp("plain")))
    curve = SidecarProcess({"pool": POOL, "bridge": {"zmq": {"curve": {"enabled": True}}}},
                           workdir=str(tmp_path_factory.mktemp("curve")))
    with plain, curve:
        info = {name: {"endpoint": proc.endpoint, "connection_file": str(proc.connection_file),
                       "token_file": str(proc.runtime_dir / "token")}
                for name, proc in (("plain", plain), ("curve", curve))}
        settings = {"CONNECTION_FILE": info["plain"]["connection_file"], "CONNECT_TIMEOUT_MS": 1000}
        yield jvm.run_cases([CASES], {"PY3_ZMTP_INFO": json.dumps(info),
                                      "PY3_SETTINGS": json.dumps(settings)}, timeout=120)


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_zmtp(zmtp_run, name):
    jvm.assert_case_passed(zmtp_run, "cases_zmtp", name)
