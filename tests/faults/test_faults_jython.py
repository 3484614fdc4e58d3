"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar, bridge.zmq_server, bridge.py4j_server.

Network faults under real Jython 2.7: the python3 library over Py4J and over JeroMQ, through
the fault-injecting proxy (proxy.py), against a real sidecar by fixed ports.

One JVM runs tests/jython/jy/cases_faults.py; it asks this side (CTL lines) to inject a fault,
heal, and check the ledger: no call ran twice, every call answered ``ok`` ran once, every call
the library proved unsent (``sent: False``) never ran, a request cut mid-frame never ran.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.testing import SidecarProcess, wait_until
from tests.jython import jvm

from .ledger import Ledger, Outcome
from .proxy import REPLY, REQUEST, FaultProxy

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_faults.py"
CONFIG = {"pool": {"initial-size": 2, "min-size": 2, "max-size": 2, "spares": 0},
          "worker": {"kill-grace": "200ms"}, "scaling": {"enabled": False},
          "health": {"enabled": False}}


def inject(proxy: FaultProxy, fault: str) -> None:
    if fault == "latency-small":
        proxy.latency(0.05)
    elif fault == "latency-large":
        proxy.latency(2.0)  # past the call's 1 s + 0.5 s grace
    elif fault == "reset-request":
        proxy.reset_next(REQUEST)
    elif fault == "reset-reply":
        proxy.reset_next(REPLY)
    elif fault == "half-open":
        proxy.half_open()
    elif fault == "stall":
        proxy.stall()
    else:
        raise ValueError(f"unknown fault {fault!r}")


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("jy_faults")
    ledger = Ledger(workdir / "ledger.txt")
    sidecar = SidecarProcess(CONFIG, workdir=str(workdir))
    sidecar.start()
    proxies = {"py4j": FaultProxy(sidecar.py4j_port), "zmq": FaultProxy(sidecar.port)}

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "info":
            return {"py4j_proxy_port": proxies["py4j"].port,
                    "zmq_proxy_endpoint": proxies["zmq"].endpoint,
                    "token_file": str(sidecar.runtime_dir / "token"), "ledger": str(ledger.path)}
        proxy = proxies[request["which"]]
        if cmd == "fault":
            proxy.resets = 0
            inject(proxy, request["fault"])
            return None
        if cmd == "heal":
            proxy.heal()
            return proxy.resets
        if cmd == "check":
            ledger.outcomes = [Outcome(tag, kind, 0.0, sent)
                               for tag, kind, sent in request["outcomes"]]
            fault, tag = request["fault"], request["tag"]
            if fault in ("latency-large", "stall") and request["kind"] != "ok":
                # delivered late (the proxy held it): it runs once, after the caller gave up
                wait_until(lambda: ledger.runs()[tag] >= 1, 10, message=f"{tag} ran late")
            runs = ledger.check_never_twice()
            if fault == "reset-request" and request["kind"] != "ok":
                assert runs.get(tag, 0) == 0, f"{tag}: half a request ran"
            if fault == "reset-reply" and request["kind"] != "ok":
                assert runs.get(tag, 0) == 1, f"{tag}: its reply was cut, so it ran, once"
            if fault == "half-open":
                assert runs.get(tag, 0) == 0, f"{tag}: a swallowed request ran"
            return runs.get(tag, 0)
        raise ValueError(f"unknown control command {cmd!r}")

    try:
        results = jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps({})}, timeout=180,
                                control=control)
    finally:
        for p in proxies.values():
            p.close()
        sidecar.stop()
    return results


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_network_faults(faults_run, name):
    jvm.assert_case_passed(faults_run, "cases_faults", name)
