"""systemd's service notification protocol: readiness, stopping, and a watchdog ping from the loop.

Owns: reading ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` once at start (and taking
them out of the environment, so workers and user code never inherit the socket), sending
``READY=1``, ``STOPPING=1`` and ``WATCHDOG=1`` (through ``sdnotify``), and the watchdog timer in
the loop's timer heap. Must not touch: what "healthy" means beyond "the loop turns": a frozen
loop fires no timer, sends no ping, and systemd (``WatchdogSec=``) restarts the sidecar.

Without ``NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) every method does nothing.
"""

from __future__ import annotations

import logging
import os

import sdnotify

from sidecar.loop import Loop, Timer

log = logging.getLogger("py3sidecar.notify")

NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def watchdog_interval(environ: dict[str, str] | os._Environ, pid: int) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises), or
    None when systemd wants no pings from this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    watchdog_pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if watchdog_pid and (not watchdog_pid.isdigit() or int(watchdog_pid) != pid):
        return None  # the pings are expected from another process of the unit
    return int(usec) / 2e6


class SystemdNotify:
    """One per sidecar, created before any worker is spawned (see ``from_environ``)."""

    def __init__(self, socket_path: str | None, interval: float | None) -> None:
        self.socket_path = socket_path
        self.interval = interval if socket_path else None
        self.notifier: sdnotify.SystemdNotifier | None = None
        if socket_path:
            saved = os.environ.get("NOTIFY_SOCKET")
            os.environ["NOTIFY_SOCKET"] = socket_path  # sdnotify reads it when it connects
            try:
                self.notifier = sdnotify.SystemdNotifier()
            finally:
                if saved is None:
                    del os.environ["NOTIFY_SOCKET"]
        self.timer: Timer | None = None
        self.pings = 0

    @classmethod
    def from_environ(cls) -> "SystemdNotify":
        """Reads systemd's variables and removes them from ``os.environ``: a worker that
        inherited ``NOTIFY_SOCKET`` could tell systemd the sidecar is fine when it is not."""
        socket_path = os.environ.get("NOTIFY_SOCKET") or None
        interval = watchdog_interval(os.environ, os.getpid())
        for name in NOTIFY_VARIABLES:
            os.environ.pop(name, None)
        notify = cls(socket_path, interval)
        if socket_path:
            log.info("systemd notification socket %s; watchdog ping %s", socket_path,
                     f"every {interval:g}s" if interval else "off (no WATCHDOG_USEC)")
        return notify

    @property
    def enabled(self) -> bool:
        return self.notifier is not None

    def send(self, state: str) -> None:
        # sdnotify swallows send errors: a notification must never stop the sidecar.
        if self.notifier is not None:
            self.notifier.notify(state)

    def ready(self) -> None:
        self.send("READY=1")

    def stopping(self) -> None:
        # The pings go on while the loop drains: systemd's stop timeout, not its watchdog,
        # bounds the rest (``stop_watchdog`` at close).
        self.send("STOPPING=1")

    def start_watchdog(self, loop: Loop) -> None:
        """Pings from a timer in ``loop``: only a loop that turns keeps the sidecar alive."""
        if self.interval is None or self.timer is not None:
            return

        def ping() -> None:
            self.send("WATCHDOG=1")
            self.pings += 1
            self.timer = loop.call_later(self.interval, ping)

        ping()

    def stop_watchdog(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
