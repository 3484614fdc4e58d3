"""Covers: sidecar.platform.sd_notify, sidecar.service.

systemd's notify protocol against a real ``py3sidecar serve``: the test is the service manager.

It binds the unix datagram socket systemd would (``NOTIFY_SOCKET``), asks for watchdog pings
(``WATCHDOG_USEC``), and reads READY=1, WATCHDOG=1 pings, silence while the sidecar is frozen
(SIGSTOP), and STOPPING=1 on SIGTERM.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from sidecar.testing import SidecarProcess, wait_until

WATCHDOG_USEC = 300_000  # pings every 0.15 s
PING_INTERVAL = WATCHDOG_USEC / 2e6


class NotifiedSidecar(SidecarProcess):
    """A sidecar started as systemd starts a ``Type=notify`` unit with ``WatchdogSec``."""

    def __init__(self, notify_socket: str, **kwargs) -> None:
        super().__init__({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                          "scaling": {"enabled": False}, "health": {"enabled": False}},
                         **kwargs)
        self.notify_socket = notify_socket

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["NOTIFY_SOCKET"] = self.notify_socket
        env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        return env


def receive(sock: socket.socket, timeout: float) -> str | None:
    """The next notification, or None if none came within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except TimeoutError:
        return None


def receive_until(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    """Every notification up to and including ``wanted`` (fails after ``timeout``)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        message = receive(sock, left) if left > 0 else None
        if message is None:
            pytest.fail(f"no {wanted} within {timeout:g}s; received {seen}")
        seen.append(message)
    return seen


def drain(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    seen = []
    try:
        while True:
            seen.append(sock.recv(4096).decode())
    except BlockingIOError:
        return seen


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield sock, str(path)
    sock.close()


def test_ready_pings_silence_when_frozen_and_stopping(tmp_path, notify_socket):
    sock, path = notify_socket
    sidecar = NotifiedSidecar(path, workdir=str(tmp_path / "sidecar"))
    with sidecar:
        before_ready = receive_until(sock, "READY=1", timeout=10)
        assert "STOPPING=1" not in before_ready
        pings = [m for m in (receive(sock, 5 * PING_INTERVAL + 2) for _ in range(3))]
        assert pings == ["WATCHDOG=1"] * 3, pings

        # Neither the workers nor user code inherit the socket: only the sidecar speaks for
        # itself (with systemd's NotifyAccess=main their messages would be ignored anyway).
        worker_pid = sidecar.client().call("os:getpid")
        environ = Path(f"/proc/{worker_pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]

        # A frozen loop sends nothing: systemd's WatchdogSec would kill and restart it.
        os.kill(sidecar.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: process_state(sidecar.proc.pid) == "T", 5,
                       message="the sidecar stopped by SIGSTOP")
            drain(sock)
            assert receive(sock, 6 * PING_INTERVAL) is None, "pings went on from a frozen loop"
        finally:
            os.kill(sidecar.proc.pid, signal.SIGCONT)
        assert receive(sock, 5 * PING_INTERVAL + 2) == "WATCHDOG=1", "no pings after SIGCONT"

        sidecar.proc.send_signal(signal.SIGTERM)
        receive_until(sock, "STOPPING=1", timeout=10)
        assert sidecar.proc.wait(15) == 0


def test_without_notify_socket_nothing_is_sent(tmp_path):
    # The default (no systemd): serves as before; the notifier has nothing to talk to.
    sidecar = SidecarProcess({"pool": {"initial-size": 1, "min-size": 1, "spares": 0},
                              "scaling": {"enabled": False}, "health": {"enabled": False}},
                             workdir=str(tmp_path))
    with sidecar:
        assert sidecar.client().execute("1 + 1").value == 2
    assert "systemd notification socket" not in sidecar.log()


@pytest.mark.parametrize("environ, interval", [
    ({"WATCHDOG_USEC": "10000000"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # another process pings
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "ten"}, None),
    ({}, None),
])
def test_watchdog_interval_follows_sd_watchdog_enabled(environ, interval):
    from sidecar.platform.sd_notify import watchdog_interval

    assert watchdog_interval(environ, 4242) == interval
