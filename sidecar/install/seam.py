"""The one seam through which ``py3sidecar install`` / ``uninstall`` / ``doctor`` change the host.

Owns: running (or, with ``--dry-run``, only printing) every system-changing step: account and
group commands (useradd, groupadd, usermod, gpasswd, userdel, groupdel), ownership (chown) and
``systemctl``; and the root prefix every absolute path of theirs goes under (``--root DIR``: /etc,
/var/lib and the default systemd folder). Must not touch: what to install (sidecar/install/plan.py).

Tests point it at a folder (``--root``) and set ``PY3SIDECAR_INSTALL_RECORD=FILE``: ``systemctl``
calls are then appended to FILE as JSON lines instead of run (there is no systemd in a test
container), and ``is-active`` answers from what was recorded (a test double of systemd). Account
commands always run for real: tests run as root and remove the accounts afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

ENV_RECORD = "PY3SIDECAR_INSTALL_RECORD"
NOLOGIN = "/usr/sbin/nologin"


class HostError(RuntimeError):
    """A system command failed; the message has the command and its output."""


class Host:
    def __init__(self, root: str | Path = "/", *, dry_run: bool = False,
                 record: str | Path | None = None,
                 echo: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.dry_run = dry_run
        env_record = os.environ.get(ENV_RECORD)
        self.record = Path(record or env_record) if (record or env_record) else None
        self.echo = echo or (lambda line: None)

    def path(self, absolute: str | Path) -> Path:
        """``absolute`` under the root prefix (itself when the root is /)."""
        absolute = Path(absolute)
        return absolute if self.root == Path("/") else self.root / absolute.relative_to("/")

    def run(self, argv: list[str]) -> str:
        self.echo("$ " + shlex.join(argv))
        if self.dry_run:
            return ""
        if argv[0] == "systemctl" and self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            with self.record.open("a") as f:
                f.write(json.dumps({"argv": argv}) + "\n")
            return ""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        except OSError as exc:
            raise HostError(f"cannot run {argv[0]}: {exc}") from None
        if proc.returncode != 0:
            raise HostError(f"`{shlex.join(argv)}` failed ({proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    # accounts -----------------------------------------------------------------------------
    def add_system_user(self, name: str) -> None:
        self.run(["useradd", "--system", "--no-create-home", "--shell", NOLOGIN,
                  "--user-group", name])

    def add_group(self, name: str) -> None:
        self.run(["groupadd", "--system", name])

    def add_to_group(self, user: str, group: str) -> None:
        self.run(["usermod", "-aG", group, user])

    def remove_from_group(self, user: str, group: str) -> None:
        self.run(["gpasswd", "-d", user, group])

    def remove_user(self, name: str) -> None:
        self.run(["userdel", name])

    def remove_group(self, name: str) -> None:
        self.run(["groupdel", name])

    def chown(self, path: Path, user: str | None, group: str | None = None) -> None:
        self.echo(f"$ chown {user or ''}{':' + group if group else ''} {path}")
        if not self.dry_run:
            import grp

            uid = pwd.getpwnam(user).pw_uid if user else -1
            gid = grp.getgrnam(group).gr_gid if group else -1
            os.chown(path, uid, gid)

    # systemd ------------------------------------------------------------------------------
    def systemctl(self, *args: str) -> str:
        return self.run(["systemctl", *args])

    def is_active(self, unit: str) -> str:
        """``systemctl is-active UNIT``'s answer (active, inactive, failed, unknown ...)."""
        if self.record is not None:
            return self._recorded_state(unit)
        try:
            proc = subprocess.run(["systemctl", "is-active", unit], capture_output=True,
                                  text=True, timeout=30)
        except OSError as exc:
            return f"unknown ({exc})"
        return proc.stdout.strip() or "unknown"

    def _recorded_state(self, unit: str) -> str:
        state = "inactive"
        try:
            lines = self.record.read_text().splitlines()
        except OSError:
            return state
        for line in lines:
            argv = json.loads(line)["argv"][1:]
            if unit not in argv and f"{unit}.service" not in argv:
                continue
            if argv[0] in ("start", "restart") or argv[:2] == ["enable", "--now"]:
                state = "active"
            elif argv[0] == "stop" or argv[:2] == ["disable", "--now"]:
                state = "inactive"
        return state
