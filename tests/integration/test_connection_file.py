"""Covers: bridge.connection, sidecar.service.

A real sidecar tells clients where it listens: connection.json with the ports it bound."""
from __future__ import annotations

import socket

from sidecar.testing import SidecarProcess


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_port_zero_is_reported_and_the_file_removed_on_stop(tmp_path):
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False}, "health": {"enabled": False}},
                             workdir=str(tmp_path), py4j_port=0)
    with sidecar:
        info = sidecar.connection
        assert info["pid"] == sidecar.proc.pid
        assert info["zmq"] == {"endpoint": sidecar.endpoint, "mechanism": "plain"}
        assert info["token_file"] == str(sidecar.runtime_dir / "token")
        port = sidecar.py4j_port
        assert port and port != 25334 and info["py4j"]["host"] == "127.0.0.1"
        assert _accepts(port), "nothing listens on the reported py4j port"
        assert sidecar.client().ping()["state"] == "running"
    assert not sidecar.connection_file.exists()
    assert not _accepts(port), "the py4j port is still open after the sidecar stopped"


def test_disabled_py4j_front_is_null(tmp_path):
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False}, "health": {"enabled": False},
                              "bridge": {"py4j": {"enabled": False}}},
                             workdir=str(tmp_path))
    with sidecar:
        assert sidecar.connection["py4j"] is None
        assert sidecar.py4j_port is None
