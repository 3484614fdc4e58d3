"""Where the sidecar's token lives, and how both ends find it (as Jupyter does with its
connection files).

Owns: the runtime folder, creating the token file (owner-only), reading it back. Must not
touch: sockets, config parsing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ENV_TOKEN = "PY3SIDECAR_TOKEN"
ENV_RUNTIME_DIR = "PY3SIDECAR_RUNTIME_DIR"


def runtime_dir() -> Path:
    if os.environ.get(ENV_RUNTIME_DIR):
        return Path(os.environ[ENV_RUNTIME_DIR])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "py3sidecar"
    return Path.home() / ".local" / "share" / "py3sidecar" / "runtime"


def default_token_file() -> Path:
    return runtime_dir() / "token"


def read_token(path: str | Path | None = None) -> str | None:
    """The token a client should send: ``$PY3SIDECAR_TOKEN``, else the token file, else None."""
    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN]
    file = Path(path) if path else default_token_file()
    try:
        return file.read_text().strip() or None
    except OSError:
        return None


def ensure_token(configured: str = "", token_file: str = "") -> tuple[str, Path | None]:
    """The sidecar's token: environment, then config, then the file (created if missing).

    Returns the token and the file it was kept in (None when it came from env or config).
    """
    if os.environ.get(ENV_TOKEN):
        return os.environ[ENV_TOKEN], None
    if configured:
        return configured, None
    path = Path(token_file) if token_file else default_token_file()
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing, path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    # Create with owner-only permissions from the start: never a moment of a readable token.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path
