"""The sidecar's runtime folder: what is next to the token besides it.

Owns: cleaning what a sidecar that died uncleanly left there (a stale connection file, stack
folders), writing ``connection.json`` from the fronts actually bound, the ZeroMQ front's
security (PLAIN with the token, or CURVE keys kept there), and naming where the token came
from. Must not touch: the fronts' sockets or the pools (it only reads what they bound).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from bridge.connection import (
    FILE_NAME,
    connection_file_for,
    remove_stale_connection_file,
    write_connection_file,
)
from bridge.loopback import is_loopback
from bridge.py4j_server import Py4JFront
from bridge.token import ENV_TOKEN
from bridge.zmq_auth import CurveKeyError, build_server_security
from bridge.zmq_server import ZmqFront
from sidecar.process.stacks import create_stack_root, remove_stale_stack_folders
from sidecar.unix_front import UnixFront

log = logging.getLogger("py3sidecar.service")


def token_source(configured: str, token_file: Any) -> str:
    if token_file:
        return f"the token file {token_file}"
    return f"${ENV_TOKEN}" if os.environ.get(ENV_TOKEN) else "python3.bridge.token"


def zmq_server_security(token: str, token_file: Any, zmq_config: Any) -> Any:
    """PLAIN with the token, or CURVE (python3.bridge.zmq.curve): bridge/zmq_auth.py."""
    curve = zmq_config.curve
    try:
        security = build_server_security(token, curve.enabled, curve.client_keys_dir,
                                         connection_file_for(token_file).parent)
    except (CurveKeyError, OSError) as exc:
        raise CurveKeyError(f"python3.bridge.zmq.curve: {exc}") from None
    if not is_loopback(zmq_config.endpoint):
        if not curve.enabled:
            log.warning("the ZeroMQ front listens beyond loopback on %s without "
                        "encryption: tokens, code and values cross the network in clear. "
                        "Set python3.bridge.zmq.curve.enabled: true", zmq_config.endpoint)
        elif not curve.client_keys_dir:
            log.warning("the ZeroMQ front on %s takes any client that holds its CURVE "
                        "server key (connection.json); list the clients allowed in "
                        "python3.bridge.zmq.curve.client-keys-dir", zmq_config.endpoint)
    return security


def clean(token_file: Any) -> Path | None:
    """Removes what a sidecar that died without cleaning up (SIGKILL) left next to the token:
    a connection file naming it, its stack folder. Returns this sidecar's stack folder."""
    folder = connection_file_for(token_file).parent
    stale = remove_stale_connection_file(folder / FILE_NAME)
    if stale is not None:
        log.info("removed the stale connection file %s (it named pid %s, which is not "
                 "running)", folder / FILE_NAME, stale.get("pid"))
    remove_stale_stack_folders(folder)
    try:
        return create_stack_root(folder)
    except OSError as exc:  # the pools fall back to the system's temp folder
        log.warning("cannot create a stack folder in %s: %s", folder, exc)
        return None


def write_connection(path: Path, token_file: Any, fronts: list[Any], http: Any,
                     http_error: str, py4j_tls_cert: str) -> None:
    info: dict[str, Any] = {"version": 1, "pid": os.getpid(),
                            "token_file": str(token_file) if token_file else None,
                            "zmq": None, "py4j": None, "unix": None}
    for front in fronts:
        if isinstance(front, ZmqFront):
            info["zmq"] = {"endpoint": front.endpoint,
                           **(front.security.connection_info() if front.security else {})}
        elif isinstance(front, Py4JFront):
            info["py4j"] = {"host": front.host, "python_port": front.port,
                            "java_port": front.java_port,
                            "tls": front.tls_context is not None,  # docs/protocol.md
                            "tls_cert_file": _absolute(
                                py4j_tls_cert)}
        elif isinstance(front, UnixFront):  # Client("unix:PATH"): this host's clients
            info["unix"] = ({"path": str(front.path), "error": front.error} if front.error
                            else {"path": str(front.path), "endpoint": front.endpoint})
    info["http"] = None if http is None else (
        {"url": None, "error": http_error} if http_error else {"url": http.url})
    try:
        write_connection_file(path, info)
    except OSError as exc:  # clients can still be configured by hand
        log.warning("cannot write the connection file %s: %s", path, exc)


def _absolute(path: str) -> str | None:
    """A configured file as clients on this host find it whatever their working folder."""
    return str(Path(path).resolve()) if path else None
