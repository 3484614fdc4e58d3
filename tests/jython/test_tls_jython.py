"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/transport, bridge.py4j_tls.

Py4J over TLS from the python3 library under real Jython 2.7 (a real JVM's JSSE against the
sidecar's python3.bridge.py4j.tls front), with a throwaway CA made in tmp_path.

One JVM runs every case of tests/jython/jy/cases_tls.py; it learns the sidecars' files through
a CTL line and reports the cost of TLS per trivial call as figures (printed with ``pytest -s``).
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.testing import SidecarProcess
from sidecar.testing_tls import make_test_certificates

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_tls.py"
FIGURES: dict[str, Any] = {}
CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "scaling": {"enabled": False}, "health": {"enabled": False}}


@pytest.fixture(scope="module")
def tls_run(tmp_path_factory):
    certs = make_test_certificates(tmp_path_factory.mktemp("jy_tls_certs"))
    tls = SidecarProcess({**CONFIG, "bridge": {"py4j": {"tls": {
        "enabled": True, "cert-file": str(certs.cert), "key-file": str(certs.key)}}}},
        workdir=str(tmp_path_factory.mktemp("jy_tls")))
    plain = SidecarProcess(CONFIG, workdir=str(tmp_path_factory.mktemp("jy_plain")))
    tls.start()
    plain.start()
    py4j = tls.connection["py4j"]
    assert py4j["tls"] is True and py4j["tls_cert_file"] == str(certs.cert.resolve())
    without_cert = tls.workdir / "connection-without-cert.json"
    without_cert.write_text(json.dumps({**tls.connection,
                                        "py4j": {**py4j, "tls_cert_file": None}}))

    def info(sc: SidecarProcess) -> dict[str, Any]:
        return {"connection_file": str(sc.connection_file), "py4j_port": sc.py4j_port,
                "token_file": str(sc.runtime_dir / "token")}

    def control(request: dict[str, Any]) -> Any:
        if request["cmd"] == "info":
            return {"tls": {**info(tls), "cert": str(certs.cert.resolve()), "ca": str(certs.ca),
                            "other_ca": str(certs.other_ca),
                            "file_without_cert": str(without_cert)},
                    "plain": info(plain)}
        if request["cmd"] == "figure":
            FIGURES[request["name"]] = request["value"]
            print(f"FIGURE {request['name']} = {request['value']}")
            return None
        raise ValueError(f"unknown control command {request['cmd']!r}")

    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps({})}, timeout=150,
                                control=control)
        results["<tls-log>"] = ("PASS", tls.log())
    finally:
        tls.stop()
        plain.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_tls(tls_run, name):
    jvm.assert_case_passed(tls_run, "cases_tls", name)


def test_the_plain_peer_was_refused_by_the_tls_front(tls_run):
    log = tls_run["<tls-log>"][1]
    assert "sent plain text to the TLS front" in log
    assert "TLS handshake with" in log  # the untrusted-certificate case: the JVM gave up
