"""Covers: sidecar.deploy.bundle_checks, sidecar.deploy.bundle.

ignition-bundle's checks of the interpreter it writes into the systemd unit."""

import os
import pwd
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from sidecar.deploy.bundle import build_bundle
from sidecar.deploy.bundle_checks import check_interpreter, unreachable


@pytest.fixture
def open_tmp():
    """A folder every user can pass (pytest's own tmp root is 0700, private to root)."""
    path = Path(tempfile.mkdtemp(prefix="py3sidecar-bundle-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_private_folder_on_the_way_is_named(open_tmp):
    tmp_path = open_tmp
    private = tmp_path / "home" / "root-only"
    private.mkdir(parents=True)
    target = private / "venv" / "bin"
    target.mkdir(parents=True)
    tmp_path.chmod(0o755)
    (tmp_path / "home").chmod(0o755)
    private.chmod(0o700)
    nobody = pwd.getpwnam("nobody")
    assert unreachable(target, nobody) == private
    private.chmod(0o755)
    assert unreachable(target, nobody) is None


def test_interpreter_behind_a_private_folder_warns(open_tmp):
    tmp_path = open_tmp
    private = tmp_path / "private"
    private.mkdir()
    python = private / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    private.chmod(0o700)
    warnings = check_interpreter(str(python), "nobody")
    assert any("nobody cannot reach the interpreter" in w and str(private) in w
               and "--python" in w for w in warnings), warnings


def test_editable_install_and_missing_interpreter_warn(tmp_path):
    # the test venv is an editable install of this checkout (make venv)
    warnings = check_interpreter(sys.executable, "root")
    assert any("editable" in w for w in warnings), warnings
    warnings = check_interpreter(str(tmp_path / "no-python"), "root")
    assert any("no such file" in w for w in warnings), warnings


def test_bundle_carries_the_warnings_and_the_python_asked_for(tmp_path):
    other = tmp_path / "py"
    other.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    other.chmod(0o755)
    report = build_bundle(tmp_path / "out", python=str(other), user="nobody")
    unit = (tmp_path / "out" / "systemd" / "py3sidecar.service").read_text()
    assert f"ExecStart={other} -m sidecar serve" in unit
    assert any("editable" in w for w in report.warnings), report.warnings
    install = (tmp_path / "out" / "INSTALL.txt").read_text()
    assert str(other) in install and "gatewayroute.handle(payload)" in install
    assert "PY3SIDECAR_RUNTIME_DIR=/var/lib/py3sidecar/runtime" in install
    events = sorted(p.name for p in (tmp_path / "out" / "gateway-events").iterdir())
    assert events == ["message-handler-py3sidecar.py", "startup.py", "timer-healthpoll.py"]
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "INSTALL.txt").st_mode) & 0o444
