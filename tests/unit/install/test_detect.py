"""Covers: sidecar.install.detect.

What `py3sidecar install`/`doctor` read from an Ignition tree and a systemd folder."""
from __future__ import annotations

import os
import pwd

from sidecar.install.detect import detect, detect_version, find_gateway_unit


def tree(tmp_path, *, conf: bool = False, resources: bool = False, jar: str | None = None):
    home = tmp_path / "ignition"
    (home / "data").mkdir(parents=True)
    if conf:
        (home / "data" / "ignition.conf").write_text("")
    if resources:
        (home / "data" / "config" / "resources").mkdir(parents=True)
    if jar:
        (home / "lib" / "core" / "common").mkdir(parents=True)
        (home / "lib" / "core" / "common" / jar).write_bytes(b"")
    return home


def test_version_from_a_jar_then_the_data_layout(tmp_path):
    assert detect_version(tree(tmp_path / "a", jar="ignition-common-8.1.44.jar"))[0] == "8.1"
    assert detect_version(tree(tmp_path / "b", resources=True, conf=True))[0] == "8.3"
    assert detect_version(tree(tmp_path / "c", conf=True))[0] == "8.1"
    assert detect_version(tree(tmp_path / "d"))[0] is None


def test_the_unit_pointing_into_the_tree_and_its_user(tmp_path):
    home = tree(tmp_path, conf=True)
    units = tmp_path / "systemd"
    units.mkdir()
    (units / "other.service").write_text("[Service]\nExecStart=/usr/bin/other\nUser=nobody\n")
    (units / "Ignition-Gateway.service").write_text(
        f"[Service]\nExecStart={home}/ignition.sh start sysd\nUser=daemon\n")
    assert find_gateway_unit(units, home).name == "Ignition-Gateway.service"
    found = detect(home, units)
    assert found.gateway_unit == "Ignition-Gateway.service" and found.gateway_user == "daemon"
    assert "User=" in found.how["gateway_user"]


def test_user_from_run_as_user_then_the_owner_of_data(tmp_path):
    home = tree(tmp_path)
    units = tmp_path / "systemd"
    units.mkdir()
    (units / "gw.service").write_text(f"[Service]\nWorkingDirectory={home}\n")
    (home / "ignition.sh").write_text('#!/bin/sh\nRUN_AS_USER="bin"\n')
    assert detect(home, units).gateway_user == "bin"
    (home / "ignition.sh").unlink()
    found = detect(home, units)
    assert found.gateway_user == pwd.getpwuid(os.stat(home / "data").st_uid).pw_name
    assert "owner" in found.how["gateway_user"]
    assert detect(home, tmp_path / "nowhere").gateway_unit is None
