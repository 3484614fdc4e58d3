"""Covers: bridge.connection, sidecar.config.model.

python3.bridge.py4j settings and the connection file (bridge/connection.py)."""
from __future__ import annotations

import json
import os

import pytest

from bridge.connection import (
    connection_file_for,
    read_connection_file,
    remove_connection_file,
    write_connection_file,
)
from sidecar.config import model as config


def test_py4j_defaults():
    py4j = config.load().python3.bridge.py4j
    assert (py4j.enabled, py4j.host, py4j.python_port, py4j.java_port) == (
        True, "127.0.0.1", 25334, 25333)


@pytest.mark.parametrize("text, message", [
    ("python3:\n  bridge:\n    py4j:\n      python-port: 70000\n", "0..65535"),
    ("python3:\n  bridge:\n    py4j:\n      java-port: -1\n", "0..65535"),
    ("python3:\n  bridge:\n    py4j:\n      host: ' '\n", "listen address"),
    ("python3:\n  bridge:\n    py4j:\n      port: 1\n", "unknown key 'python3.bridge.py4j.port'"),
    ("python3:\n  bridge:\n    py4j:\n      max-connections: 0\n", "at least 1"),
    ("python3:\n  bridge:\n    py4j:\n      idle-timeout: -1\n", "0 to never"),
])
def test_py4j_bad_values_are_named(text, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(text=text)
    assert message in str(err.value)
    assert "python3.bridge.py4j" in str(err.value)


def test_py4j_connection_limits():
    py4j = config.load().python3.bridge.py4j
    assert (py4j.max_connections, py4j.idle_timeout) == (1024, 3600.0)
    cfg = config.load(text="python3:\n  bridge:\n    py4j:\n      idle-timeout: 0\n")
    assert cfg.python3.bridge.py4j.idle_timeout == 0


def test_port_zero_is_allowed():
    cfg = config.load(text="python3:\n  bridge:\n    py4j:\n      python-port: 0\n")
    assert cfg.python3.bridge.py4j.python_port == 0


def test_connection_file_lives_next_to_the_token(tmp_path, monkeypatch):
    assert connection_file_for(tmp_path / "t" / "token") == tmp_path / "t" / "connection.json"
    monkeypatch.setenv("PY3SIDECAR_RUNTIME_DIR", str(tmp_path / "rt"))
    assert connection_file_for(None) == tmp_path / "rt" / "connection.json"


def test_connection_file_round_trip_and_removal(tmp_path):
    path = tmp_path / "rt" / "connection.json"
    info = {"version": 1, "pid": os.getpid(), "py4j": {"python_port": 1234}}
    write_connection_file(path, info)
    assert read_connection_file(path) == info
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert not list(path.parent.glob(".*.tmp")), "the temporary file was left behind"
    remove_connection_file(path, os.getpid() + 1)  # another sidecar's file: kept
    assert path.exists()
    remove_connection_file(path, os.getpid())
    assert not path.exists()


def test_unreadable_connection_file_is_none(tmp_path):
    assert read_connection_file(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_connection_file(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text(json.dumps([1]))
    assert read_connection_file(tmp_path / "list.json") is None
