"""What ``serve`` refuses after the config has loaded, checked without starting anything, so
that ``py3sidecar config --check FILE`` rejects what ``serve`` would.

Owns: the endpoints beyond loopback the fronts would listen on, the token ``serve`` would use
(found as ``bridge.token.ensure_token`` finds it, but never created), and running the checks
``serve`` runs on them: the token file's permissions, the token's length beyond loopback
(``bridge/token.py``). Every other refusal is the config's own (``load``). Must not touch:
sockets, processes, the token file (read only), config parsing (``sidecar/config/model.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bridge.loopback import is_loopback
from bridge.token import (
    ENV_TOKEN,
    check_private,
    check_token_strength,
    default_token_file,
)


def front_endpoints(bridge: Any) -> list[str]:
    """``tcp://host:port`` of each enabled front, as the fronts name themselves."""
    endpoints = []
    if bridge.zmq.enabled:
        endpoints.append(bridge.zmq.endpoint)
    if bridge.py4j.enabled:
        endpoints.append(f"tcp://{bridge.py4j.host}:{bridge.py4j.python_port}")
    return endpoints


def planned_token(bridge: Any) -> tuple[str, str] | None:
    """(token, where it comes from) as ``serve`` would take it, or None when ``serve`` would
    make a new (long) one. A token file others may read is refused (``TokenError``)."""
    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN], f"${ENV_TOKEN}"
    if bridge.token:
        return bridge.token, "python3.bridge.token"
    path = Path(bridge.token_file) if bridge.token_file else default_token_file()
    try:
        existing = path.read_text().strip()
    except OSError:  # missing (serve creates it), or unreadable here (serve will say)
        return None
    if not existing:
        return None
    check_private(path)
    return existing, f"the token file {path}"


def check_before_serving(config: Any) -> None:
    """Raises ``TokenError`` (naming the key and what to do) for what ``serve`` refuses."""
    python3 = config.python3
    planned = planned_token(python3.bridge)
    if planned is not None:
        token, source = planned
        exposed = [e for e in front_endpoints(python3.bridge) if not is_loopback(e)]
        check_token_strength(token, source, exposed)
