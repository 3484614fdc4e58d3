"""Checks ``ignition-bundle`` makes on the interpreter it writes into the systemd unit.

Owns: telling the integrator, before systemd does, that the unit's Python cannot run the sidecar
as the gateway's user: a path the user cannot reach (e.g. a venv under root's home), a Python
that cannot import ``sidecar``, or an editable (development) install. Must not touch: the files
of the bundle (``sidecar/deploy/bundle.py`` writes them; this only returns warnings).
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

_PROBE = (
    "import json, sidecar, importlib.metadata as m\n"
    "try:\n    url = m.distribution('py3sidecar').read_text('direct_url.json')\n"
    "except Exception:\n    url = None\n"
    "print(json.dumps({'file': sidecar.__file__, 'direct_url': url}))\n")


def _can(user: pwd.struct_passwd | None, path: Path, want: int) -> bool:
    """Whether ``user`` (None: an unknown user, i.e. "others") has ``want`` (r=4, x=1) on path."""
    try:
        st = path.stat()
    except OSError:
        return False
    if user is not None:
        if user.pw_uid == 0:
            return True
        if st.st_uid == user.pw_uid:
            return (st.st_mode >> 6) & want == want
        groups = {user.pw_gid} | {g.gr_gid for g in _groups_of(user.pw_name)}
        if st.st_gid in groups:
            return (st.st_mode >> 3) & want == want
    return st.st_mode & want == want


def _groups_of(name: str) -> list:
    import grp

    return [g for g in grp.getgrall() if name in g.gr_mem]


def unreachable(path: Path, user: pwd.struct_passwd | None) -> Path | None:
    """The first folder on the way to ``path`` (or ``path`` itself) the user cannot pass."""
    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        if not _can(user, folder, 1):
            return folder
    if not _can(user, path, 4 | (1 if path.is_dir() or os.access(path, os.X_OK) else 0)):
        return path
    return None


def check_interpreter(python: str, user_name: str) -> list[str]:
    """Warnings (empty: fine) about running ``python -m sidecar serve`` as ``user_name``."""
    warnings: list[str] = []
    try:
        user: pwd.struct_passwd | None = pwd.getpwnam(user_name)
    except KeyError:
        user = None
        warnings.append(f"the user {user_name!r} does not exist on this host; checked what "
                        "any other user could read (pass --user for the gateway's account)")
    who = user_name if user else "other users"
    if not Path(python).exists():
        return warnings + [f"cannot run {python}: no such file (pass --python with the "
                           "interpreter of the sidecar's virtualenv)"]
    blocked = unreachable(Path(python), user)
    if blocked is not None:
        warnings.append(f"{who} cannot reach the interpreter {python}: {blocked} is not "
                        f"readable/searchable ({stat.filemode(blocked.stat().st_mode)}). "
                        "Install py3sidecar into a virtualenv the gateway's user can read "
                        "(e.g. /opt/py3sidecar/venv) and pass --python /opt/py3sidecar/venv/"
                        "bin/python")
    try:
        probe = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                               timeout=30, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return warnings + [f"cannot run {python}: {exc}"]
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return warnings + [f"{python} cannot import the sidecar ({last}): pip install "
                           "py3sidecar into that interpreter's environment"]
    info = json.loads(probe.stdout)
    package = Path(info["file"]).parent
    blocked = unreachable(package, user)
    if blocked is not None:
        warnings.append(f"{who} cannot read the sidecar package at {package} ({blocked} is "
                        "in the way)")
    direct_url = json.loads(info["direct_url"]) if info.get("direct_url") else {}
    if (direct_url.get("dir_info") or {}).get("editable"):
        warnings.append(f"{python} runs an editable (development) install from "
                        f"{direct_url.get('url', package)}: the service would run whatever "
                        "that checkout holds. Install a release into its own virtualenv for "
                        "the gateway and pass --python")
    return warnings
