"""Whether a host or an endpoint is loopback: the one test both ends and every front use.

Owns: ``is_loopback_host`` (``127.0.0.0/8``, ``::1`` with or without brackets, ``localhost``)
and ``is_loopback`` for an endpoint URL (``tcp://[::1]:5557``; ``unix:PATH`` is local). Used
where a front decides what it may serve without a token or a long one
(``sidecar.config.serve_checks``, the HTTP front, the Py4J front). Must not touch: sockets,
names resolution (a host name other than ``localhost`` is not loopback: it could resolve
anywhere).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """``127.x.y.z``, ``::1``, ``[::1]`` or ``localhost`` (any case); nothing else."""
    bare = host.strip().strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_loopback(endpoint: str) -> bool:
    """The host of ``scheme://host:port`` is loopback (``tcp://[::1]:5557`` is); a Unix
    socket (``unix:PATH``) never leaves this host."""
    if endpoint.startswith("unix:"):
        return True
    return is_loopback_host(urlsplit(endpoint).hostname or "")
