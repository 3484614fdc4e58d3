"""Where the sidecar's token lives, and how both ends find it (as Jupyter does with its
connection files).

Owns: the runtime folder, creating the token file (owner-only), reading it back, refusing a
token file others can read and a short token on a sidecar reachable beyond loopback. Must not
touch: sockets, config parsing.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

ENV_TOKEN = "PY3SIDECAR_TOKEN"
ENV_RUNTIME_DIR = "PY3SIDECAR_RUNTIME_DIR"
#: The shortest token accepted when a front listens beyond loopback (ours have 43 characters).
MIN_EXPOSED_TOKEN_LENGTH = 32


class TokenError(ValueError):
    """The token or its file is unsafe to serve with; the message says what to do."""


def token_group_id(group: str) -> int | None:
    """The gid of ``python3.bridge.token-group`` (None when empty); a missing group is named."""
    if not group:
        return None
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise TokenError(f"python3.bridge.token-group: there is no group {group!r} on this "
                         "machine; create it (groupadd --system, or `py3sidecar install`) or "
                         "leave the key empty") from None


def check_private(path: Path, group: str = "") -> None:
    """Refuse a token file that group or others may read (or write): they could run Python as
    this user through the sidecar. With ``group`` (python3.bridge.token-group), that group may
    read it (the gateway's account is its member), and nothing more."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    gid = token_group_id(group)
    if gid is not None and st.st_gid == gid:
        mode &= ~0o040
    if mode & 0o077:
        who = " and ".join(w for w, bits in (("its group", 0o070), ("other users", 0o007))
                           if mode & bits)
        raise TokenError(f"the token file {path} is open to {who} (mode {mode:04o}): whoever "
                         f"reads it can run Python as this user. Make it private with "
                         f"`chmod 600 {path}` (or delete it to have a new token made), then "
                         "start again")


def check_token_strength(token: str, source: str, exposed: Sequence[str]) -> None:
    """A sidecar listening beyond loopback (``exposed`` endpoints) needs a long token."""
    if exposed and len(token) < MIN_EXPOSED_TOKEN_LENGTH:
        raise TokenError(
            f"python3.bridge.token: the token (from {source}) has {len(token)} characters, but "
            f"the sidecar listens beyond loopback on {', '.join(exposed)}: such a token needs "
            f"at least {MIN_EXPOSED_TOKEN_LENGTH}. Leave python3.bridge.token empty to have one "
            "generated, or set one made with `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`")


def new_token() -> str:
    """A fresh 43-character token that never starts with ``-``.

    One urlsafe token in 64 starts with ``-``, and argparse reads ``--token -x...`` as a
    missing value followed by an unknown option: every CLI call given the token would fail.
    """
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


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


def share_with_group(path: Path, gid: int) -> None:
    """The token file 0640 in group ``gid`` (python3.bridge.token-group)."""
    os.chown(path, -1, gid)
    os.chmod(path, 0o640)


def open_folder_to_group(folder: Path, gid: int) -> None:
    """The runtime folder traversable by group ``gid``, as ``py3sidecar install`` makes it
    (0750 in the group): its members reach the token file (0640), connection.json and the
    Unix socket (0660) by name. Only a folder of this user's that is not in the group yet, or
    is but closed to it; nothing is opened to other users, the rest inside keeps its own modes
    (the stack folders and keys stay 0700/0600)."""
    st = os.stat(folder)
    if st.st_uid != os.geteuid():
        return  # someone else's (an installed layout): its owner decides
    if st.st_gid != gid:
        os.chown(folder, -1, gid)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_gid != gid or not mode & 0o010:
        os.chmod(folder, (mode & ~0o070) | 0o050)


def ensure_token(configured: str = "", token_file: str = "",
                 group: str = "") -> tuple[str, Path | None]:
    """The sidecar's token: environment, then config, then the file (created if missing).

    Returns the token and the file it was kept in (None when it came from env or config).
    ``group``: the token file is made (or turned) 0640 in that group.
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
    gid = token_group_id(group)
    if existing:
        check_private(path, group)
        if gid is not None and (path.stat().st_gid != gid
                                or stat.S_IMODE(path.stat().st_mode) != 0o640):
            share_with_group(path, gid)
        if gid is not None:
            open_folder_to_group(path.parent, gid)
        return existing, path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = new_token()
    # Create with owner-only permissions from the start: never a moment of a readable token.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    if gid is not None:
        share_with_group(path, gid)
        open_folder_to_group(path.parent, gid)
    return token, path
