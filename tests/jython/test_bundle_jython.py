"""Covers: sidecar.deploy.bundle, sidecar.deploy.gateway_jar,
    ignition-scripts/ignition/script-python/python3.

`py3sidecar ignition-bundle OUT`: the files, and the issue's Done-when under real Jython with
nothing but the bundle (project zip + jars) against a real sidecar."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from sidecar.testing import PROJECT_ROOT, SidecarProcess

from . import jvm

pytestmark = pytest.mark.jython

CASES = jvm.JY / "cases_bundle.py"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "out"
    proc = subprocess.run([sys.executable, "-m", "sidecar", "ignition-bundle", str(out)],
                          cwd=str(PROJECT_ROOT), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out


def test_bundle_files(bundle):
    jars = sorted(p.name for p in (bundle / "jars").iterdir())
    assert [j for j in jars if j.startswith("py4j")] and "msgpack-core.jar" in jars, jars
    assert "py3sidecar-gateway.jar" in jars, jars  # the Java helper (cases_bundle uses it)
    assert not [j for j in jars if "jeromq" in j], "JeroMQ only with --zmq"
    unit = (bundle / "systemd" / "py3sidecar.service").read_text()
    assert "ExecStart=" in unit and "serve --config /etc/py3sidecar/config.yml" in unit
    assert "User=py3sidecar" in unit and "PY3SIDECAR_RUNTIME_DIR=" in unit
    assert "Before=Ignition-Gateway.service" in unit and "Group=py3sidecar-clients" in unit
    assert "\nAmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL" in unit  # workers: own user
    names = zipfile.ZipFile(bundle / "py3sidecar-project.zip").namelist()
    for module in ("python3", "py3sidecar/settings", "py3sidecar/codec", "py3sidecar/datasets",
                   "py3sidecar/decoder", "py3sidecar/valuepath", "py3sidecar/transport",
                   "py3sidecar/zmtp", "py3sidecar/unixlink", "py3sidecar/breaker",
                   "py3sidecar/healthpoll",
                   "py3sidecar/gatewayroute",
                   "py3sidecar/client", "py3sidecar/background", "py3sidecar/endpoints",
                   "py3sidecar/selftest"):
        for leaf in ("code.py", "resource.json"):
            assert f"ignition/script-python/{module}/{leaf}" in names, names
    # no gateway event in the inheritable library: they would run once per child project
    assert not [n for n in names if n.startswith(("ignition/timer", "ignition/message",
                                                  "ignition/startup"))], names
    child = zipfile.ZipFile(bundle / "py3sidecar-gateway-project.zip").namelist()
    for leaf in ("ignition/timer/py3sidecar-healthpoll/handleTimerEvent.py",
                 "ignition/message/py3sidecar/handleMessage.py", "ignition/startup/onStartup.py",
                 "project.json"):  # the 8.3 resources of the runnable child
        assert leaf in child, child
    assert zipfile.ZipFile(bundle / "py3sidecar-gateway-project-8.1.zip").namelist() == [
        "project.json"]  # 8.1: the events are pasted into the Designer
    parent = json.loads((bundle / "gateway-project" / "project.json").read_text())
    assert parent["parent"] == "py3sidecar" and parent["inheritable"] is False, parent
    # gateway-only modules (they need the gateway's jars) say so; the facade runs everywhere
    for module, scope in (("python3", "A"), ("py3sidecar/codec", "G"),
                          ("py3sidecar/transport", "G"), ("py3sidecar/zmtp", "G"),
                          ("py3sidecar/unixlink", "G"),
                          ("py3sidecar/gatewayroute", "A")):
        meta = json.loads((bundle / "project" / "ignition" / "script-python" / module
                           / "resource.json").read_text())
        assert meta["scope"] == scope, (module, meta["scope"])
    assert "project.json" in names
    assert json.loads((bundle / "project" / "project.json").read_text())["inheritable"] is True
    import yaml

    from sidecar.config.model import load
    shipped = yaml.safe_load((bundle / "config.yml").read_text())
    assert shipped["python3"]["worker"]["user"] == "py3sidecar-worker", shipped
    assert shipped["python3"]["bridge"]["token-group"] == "py3sidecar-clients", shipped
    # valid as shipped, once `py3sidecar install` has made its accounts (not made here)
    shipped["python3"]["worker"].update(user="", group="")
    shipped["python3"]["bridge"]["token-group"] = ""
    (bundle / "config-check.yml").write_text(yaml.safe_dump(shipped))
    load(bundle / "config-check.yml")


def test_bundle_with_zmq_ships_jeromq(tmp_path):
    from sidecar.deploy.bundle import build_bundle
    report = build_bundle(tmp_path / "b", zmq=True)
    if (jvm.JAVA_DIR / "jeromq.jar").exists():
        assert (tmp_path / "b" / "jars" / "jeromq.jar").exists()
    else:
        assert any("jeromq.jar" in n for n in report.notes), report.notes


def test_bundle_names_a_missing_msgpack_jar(tmp_path):
    from sidecar.deploy.bundle import build_bundle
    report = build_bundle(tmp_path / "b", java_dir=tmp_path / "no-java")
    assert any("msgpack-core.jar" in n and "libmsgpack-java" in n for n in report.notes)


@pytest.fixture(scope="module")
def done_when_run(bundle, tmp_path_factory):
    library = tmp_path_factory.mktemp("gateway_project")
    with zipfile.ZipFile(bundle / "py3sidecar-project.zip") as zf:
        zf.extractall(library)
    jars = sorted(str(p) for p in (bundle / "jars").glob("*.jar"))
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False}, "health": {"enabled": False}},
                             workdir=str(tmp_path_factory.mktemp("bundle_sidecar")))
    sidecar.start()
    try:
        settings = {"CONNECTION_FILE": str(sidecar.connection_file)}
        return jvm.run_cases([CASES], {"PY3_SETTINGS": json.dumps(settings)}, timeout=90,
                             library=library / "ignition" / "script-python", jars=jars)
    finally:
        sidecar.stop()


@pytest.mark.parametrize("name", jvm.case_names(CASES))
def test_done_when_with_only_the_bundle(done_when_run, name):
    jvm.assert_case_passed(done_when_run, "cases_bundle", name)
