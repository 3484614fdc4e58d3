"""The connection file: where a running sidecar tells its clients how to reach it (as Jupyter's
kernels do with their connection files).

Owns: the file's place (next to the token file, else the runtime folder), its JSON shape, writing
it atomically, reading it back, and removing one left by a sidecar that is no longer running.
Must not touch: sockets, the token itself (only its path is written here, never the secret).

Shape (``version`` 1)::

    {"version": 1, "pid": 1234, "token_file": "/run/py3sidecar/token",
     "zmq": {"endpoint": "tcp://127.0.0.1:5557"},
     "py4j": {"host": "127.0.0.1", "python_port": 25334, "java_port": 25333,
              "tls": false, "tls_cert_file": null},
     "http": {"url": "http://127.0.0.1:5558"}}

``zmq``/``py4j``/``http`` are ``null`` when that front is disabled (``http`` is
``{"url": null, "error": ...}`` when its port could not be bound); ports are the ones actually bound
(a configured port 0 shows the port the system chose).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil

from bridge.token import runtime_dir

FILE_NAME = "connection.json"


def connection_file_for(token_file: str | Path | None) -> Path:
    """Next to the token file when there is one, else in the runtime folder."""
    folder = Path(token_file).parent if token_file else runtime_dir()
    return folder / FILE_NAME


def write_connection_file(path: Path, info: dict[str, Any]) -> None:
    """Atomically (write, then rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.chmod(tmp, 0o644)  # holds no secret: the token stays in its owner-only file
    os.replace(tmp, path)


def read_connection_file(path: str | Path | None = None) -> dict[str, Any] | None:
    """The file's content, or None when it is missing or unreadable."""
    file = Path(path) if path else runtime_dir() / FILE_NAME
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def written_by_running_process(pid: Any, written_at: float) -> bool:
    """Whether process ``pid`` runs and could have written something at ``written_at``.

    A pid is reused after its process dies (a restarted container often gets the same pid):
    a process started after the file was last written is not its writer, nor is this one.
    """
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # it exists, but we may not look at it: assume it is alive
    return started <= written_at + 1.0  # create_time is rounded to clock ticks


def remove_stale_connection_file(path: Path) -> dict[str, Any] | None:
    """Removes ``path`` if the sidecar it names is not running; returns what it said then."""
    try:
        written_at = path.stat().st_mtime
    except OSError:
        return None
    data = read_connection_file(path)
    pid = data.get("pid") if data is not None else None
    if written_by_running_process(pid, written_at):
        return None
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return data if data is not None else {}


def remove_connection_file(path: Path, pid: int) -> None:
    """Removes the file if it still describes process ``pid`` (a newer sidecar's file stays)."""
    data = read_connection_file(path)
    if data is not None and data.get("pid") == pid:
        try:
            path.unlink()
        except OSError:
            pass
