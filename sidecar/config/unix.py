"""The config section of the Unix-socket front: ``python3.bridge.unix``.

Owns: that model, its defaults and checks (a path the kernel cannot bind is a config error
naming the key, so ``config --check`` refuses what ``serve`` would). Must not touch: the
socket at run time (``sidecar.unix_front``), the other sections (``sidecar.config.model``
includes this one).
"""

from __future__ import annotations

from pydantic import field_validator

from sidecar.config.fields import Section

# sockaddr_un.sun_path is 108 bytes on Linux, the terminating NUL included.
MAX_PATH_BYTES = 107


class UnixConfig(Section):
    """``python3.bridge.unix``: local clients on this host over a Unix-domain socket, read by
    the loop thread itself (no libzmq I/O thread, no TCP): the cheapest hop a CPython client
    has. Only the sidecar's own user (and root) may connect, and the members of
    ``python3.bridge.token-group`` when it is set (the gateway's Jython ``TRANSPORT = 'unix'``);
    the token is still checked on every request."""

    enabled: bool = True
    path: str = ""  # empty: sidecar.sock next to the connection file (the runtime folder)
    max_connections: int = 256

    @field_validator("path")
    @classmethod
    def _bindable(cls, value: str) -> str:
        if len(value.encode()) > MAX_PATH_BYTES:
            raise ValueError(f"{value!r} is {len(value.encode())} bytes; a Unix socket path "
                             f"holds at most {MAX_PATH_BYTES}: choose a shorter one")
        return value

    @field_validator("max_connections")
    @classmethod
    def _cap(cls, value: int) -> int:
        if value < 1:
            raise ValueError("expected at least 1 connection (one per client thread)")
        return value
