"""Covers: sidecar.config.unix, sidecar.config.model.

python3.bridge.unix: its defaults, and what ``config --check`` (``config.load``) refuses, each
message naming the key and the value."""

from __future__ import annotations

import pytest

from sidecar.config import model as config


def load(body: str) -> config.Config:
    return config.load(text=f"python3:\n  bridge:\n    unix: {{{body}}}\n")


def test_defaults_listen_next_to_the_connection_file():
    unix = config.load(text="python3: {}\n").python3.bridge.unix
    assert unix.enabled is True and unix.path == "" and unix.max_connections == 256


def test_a_path_the_kernel_cannot_bind_is_refused_naming_the_key():
    long = "/tmp/" + "d" * 120 + ".sock"
    with pytest.raises(config.ConfigError) as info:
        load(f"path: {long}")
    text = str(info.value)
    assert "bridge.unix.path" in text and "at most 107" in text


def test_no_connections_is_refused_naming_the_key():
    with pytest.raises(config.ConfigError) as info:
        load("max-connections: 0")
    assert "python3.bridge.unix.max-connections = 0" in str(info.value)


def test_it_can_be_turned_off_and_moved():
    unix = load("enabled: false, path: /run/py3/s.sock").python3.bridge.unix
    assert unix.enabled is False and unix.path == "/run/py3/s.sock"
