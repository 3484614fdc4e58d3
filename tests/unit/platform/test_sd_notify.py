"""Covers: sidecar.platform.sd_notify.

systemd's notification protocol on a real datagram socket: READY=1 and STOPPING=1 arrive,
the variables leave the environment (no worker inherits them), and the watchdog interval is
half of WATCHDOG_USEC, for this process only.
"""

from __future__ import annotations

import os
import socket

import pytest

from sidecar.platform.sd_notify import SystemdNotify, watchdog_interval


@pytest.mark.parametrize("environ, interval", [
    ({"WATCHDOG_USEC": "4000000"}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "77"}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "78"}, None),  # another process's pings
    ({"WATCHDOG_USEC": "0"}, None), ({}, None), ({"WATCHDOG_USEC": "x"}, None),
])
def test_watchdog_interval(environ, interval):
    assert watchdog_interval(environ, 77) == interval


def test_ready_and_stopping_reach_the_socket_and_the_variables_leave(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    try:
        notify = SystemdNotify.from_environ()
        assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
        assert notify.enabled and notify.interval == 1.0
        notify.ready()
        assert server.recv(64) == b"READY=1"
        notify.stopping()
        assert server.recv(64) == b"STOPPING=1"
    finally:
        server.close()


def test_without_systemd_every_method_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify = SystemdNotify.from_environ()
    assert not notify.enabled and notify.interval is None
    notify.ready()
    notify.stopping()
