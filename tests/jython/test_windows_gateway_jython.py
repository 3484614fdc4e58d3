"""Covers: ignition-scripts/ignition/script-python/python3,
    ignition-scripts/ignition/script-python/py3sidecar/settings, bridge.tls.

The Windows-gateway recipe (README "Windows gateways", INSTALL.txt section I), run here: a
gateway on one host, its sidecars on another, only settings between them.

Loopback stands in for the other host: two sidecars ("linux1", "linux2") listen beyond loopback
(``python3.bridge.py4j.host: 0.0.0.0``, so a long token is required) with Py4J over TLS, and
linux1's ZeroMQ front too (``tcp://0.0.0.0:PORT`` with CURVE). The Jython library is configured
as a remote gateway would be: no connection file, no token file, only a site settings file found
through ``PY3SIDECAR_SITE_SETTINGS`` holding PY4J_HOST (a name in the certificate), the port,
PY4J_TLS_CERT (the CA, copied to the "gateway"), TOKEN by value and FAILOVER_SIDECARS. The JVM
stops and starts linux1 through CTL lines. A CPython client reaches linux1's CURVE front with the
server key copied from its connection.json, as a remote service would.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.client import Client
from bridge.protocol import Unavailable
from sidecar.testing import SidecarProcess
from sidecar.testing_tls import make_test_certificates

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_windows_gateway.py"
CONFIG = {"pool": {"initial-size": 1, "min-size": 1, "max-size": 1, "spares": 0},
          "scaling": {"enabled": False}, "health": {"enabled": False},
          "worker": {"kill-grace": "200ms"}}
CONNECT_TIMEOUT_MS = 1000
BREAKER_OPEN_MS = 1500


class RemoteSidecar(SidecarProcess):
    """A sidecar whose fronts listen on 0.0.0.0, reached at 127.0.0.1 (the "other host")."""

    def __init__(self, certs: Any, workdir: Path, curve: bool) -> None:
        tls = {"enabled": True, "cert-file": str(certs.cert), "key-file": str(certs.key)}
        super().__init__({**CONFIG, "bridge": {"py4j": {"host": "0.0.0.0", "tls": tls}}},
                         workdir=str(workdir))
        zmq: dict[str, Any] = {"endpoint": f"tcp://0.0.0.0:{self.port}"}
        if curve:
            zmq["curve"] = {"enabled": True}
        self.config["python3"]["bridge"]["zmq"].update(zmq)
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.curve = curve

    @property
    def server_key(self) -> str | None:
        return ((self.connection.get("zmq") or {}).get("curve") or {}).get("server-key")

    def client(self, timeout: float = 10.0, **kwargs: Any) -> Client:
        # The connection file names tcp://0.0.0.0:PORT, not the address we dial: give the key.
        if self.curve:
            kwargs.setdefault("curve_server_key", self.server_key)
        return super().client(timeout, **kwargs)


@pytest.fixture(scope="module")
def sidecars(tmp_path_factory):
    certs = make_test_certificates(tmp_path_factory.mktemp("win_certs"))
    pair = {"linux1": RemoteSidecar(certs, tmp_path_factory.mktemp("linux1"), curve=True),
            "linux2": RemoteSidecar(certs, tmp_path_factory.mktemp("linux2"), curve=False)}
    try:
        for sc in pair.values():
            sc.start()
        yield certs, pair
    finally:
        for sc in pair.values():
            sc.stop()


def site_settings(certs: Any, pair: dict[str, RemoteSidecar], gateway: Path) -> dict[str, Any]:
    """What the integrator writes on the Windows gateway: everything by value, nothing read
    from the Linux host's files (the CA is a copy)."""
    ca = gateway / "py3sidecar-ca.pem"
    shutil.copyfile(certs.ca, ca)
    one, two = pair["linux1"], pair["linux2"]
    for sc in pair.values():
        assert sc.connection["py4j"]["host"] == "0.0.0.0" and sc.connection["py4j"]["tls"]
        assert len(sc.token) >= 32
    settings = {"TRANSPORT": "py4j", "CONNECTION_FILE": None, "TOKEN_FILE": None,
                "PY4J_HOST": "localhost", "PY4J_PYTHON_PORT": one.py4j_port,
                "PY4J_TLS_CERT": str(ca), "TOKEN": one.token,
                "FAILOVER_SIDECARS": [{"NAME": "linux2", "PY4J_HOST": "localhost",
                                       "PY4J_PYTHON_PORT": two.py4j_port,
                                       "PY4J_TLS_CERT": str(ca), "TOKEN": two.token}],
                "CONNECT_TIMEOUT_MS": CONNECT_TIMEOUT_MS, "BREAKER_OPEN_MS": BREAKER_OPEN_MS,
                "DEFAULT_TIMEOUT_MS": 5000, "CLIENT_GRACE_MS": 1000}
    assert list(settings) == site_settings_keys()
    return settings


@pytest.fixture(scope="module")
def windows_run(sidecars, tmp_path_factory):
    certs, pair = sidecars
    gateway = tmp_path_factory.mktemp("windows_gateway")
    site = gateway / "ignition-site.json"
    site.write_text(json.dumps(site_settings(certs, pair, gateway), indent=2))
    one = pair["linux1"]

    def control(request: dict[str, Any]) -> Any:
        cmd = request["cmd"]
        if cmd == "info":
            return {"site": str(site), "other_ca": str(certs.other_ca),
                    "zmq_endpoint": f"tcp://127.0.0.1:{one.port}"}
        if cmd == "stop":
            one.stop()
            return one.proc.returncode
        if cmd == "start":
            one.stop()
            one.start()
            return one.py4j_port
        raise ValueError(f"unknown control command {cmd!r}")

    try:
        # PY3_SETTINGS empty: the site file is all the configuration.
        return jvm.run_cases([CASES], {"PY3_SETTINGS": "{}",
                                       "PY3SIDECAR_SITE_SETTINGS": str(site)},
                             timeout=180, control=control)
    finally:
        if one.proc is None or one.proc.poll() is not None:
            one.start()  # for the CPython cases below, whatever the JVM left


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_jython_windows_gateway(windows_run, name):
    jvm.assert_case_passed(windows_run, "cases_windows_gateway", name)


def test_a_remote_cpython_client_over_curve(sidecars):
    """A service on another host: the endpoint, the token and the server key copied from
    linux1's connection.json; calls are encrypted and served."""
    _, pair = sidecars
    one = pair["linux1"]
    assert one.connection["zmq"]["mechanism"] == "curve"
    key = json.loads(one.connection_file.read_text())["zmq"]["curve"]["server-key"]
    with Client(f"tcp://127.0.0.1:{one.port}", one.token, timeout=5,
                curve_server_key=key) as client:
        assert client.call("operator:add", 40, 2) == 42


def test_a_cpython_client_without_the_server_key_is_refused(sidecars):
    _, pair = sidecars
    one = pair["linux1"]
    with Client(f"tcp://127.0.0.1:{one.port}", one.token, timeout=2,
                connect_timeout=1.0) as client, pytest.raises(Unavailable) as err:
        client.call("operator:add", 1, 2)  # PLAIN against a CURVE front: no handshake
    # (the message is the one for an unreachable sidecar: CURVE refuses without a word)
    assert "cannot reach the sidecar" in str(err.value), err.value
    assert one.connection["zmq"]["endpoint"].startswith("tcp://0.0.0.0:"), one.connection


def test_the_install_text_recipe_names_real_settings():
    """INSTALL.txt section I's site file example is JSON, of settings the library has, with
    the keys this test configured the gateway with."""
    from sidecar.deploy.bundle import install_text

    text = install_text()
    section = text[text.index("I. A Windows gateway with a Linux sidecar"):]
    start = section.index('{"TRANSPORT"')
    example = json.loads(section[start:section.index("]}", start) + 2])
    library = (jvm.LIBRARY / "py3sidecar" / "settings" / "code.py").read_text()
    names = set(re.findall(r"^([A-Z][A-Z0-9_]+) = ", library, re.M))
    assert set(example) <= names, set(example) - names
    assert set(example["FAILOVER_SIDECARS"][0]) <= names | {"NAME"}
    assert set(example) == set(site_settings_keys()) - {"CONNECT_TIMEOUT_MS", "BREAKER_OPEN_MS",
                                                        "DEFAULT_TIMEOUT_MS", "CLIENT_GRACE_MS"}
    assert "Porting to Windows" in section and "PY3SIDECAR_SITE_SETTINGS" in section


def site_settings_keys() -> list[str]:
    return ["TRANSPORT", "CONNECTION_FILE", "TOKEN_FILE", "PY4J_HOST", "PY4J_PYTHON_PORT",
            "PY4J_TLS_CERT", "TOKEN", "FAILOVER_SIDECARS", "CONNECT_TIMEOUT_MS",
            "BREAKER_OPEN_MS", "DEFAULT_TIMEOUT_MS", "CLIENT_GRACE_MS"]
